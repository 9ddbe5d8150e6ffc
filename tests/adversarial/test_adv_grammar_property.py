"""
Property tests: any bytes into the wire grammar give a well-formed result or
a ChatError, never another exception; any bytes into a server connection
never raise and never make the server emit a control byte but CRLF.
"""

import re
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from chatd import grammar
from chatd.grammar import ChatError
from chatd.hub import Hub
from chatd.limits import Limits
from chatd.factory import ChatFactory
from chatd.store import FileStore

import spec
from helpers import unsafe_in

UNSAFE_TEXT = spec.UNSAFE  # from docs/PROTOCOL.md, not from the grammar
KINDS = {"chat", "action", "private", "private-sent", "notice", "reply", "error",
         "file", "unknown"}
FAST_SETTINGS = settings(max_examples=300, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])

# Text as the server sees it (decoded from any bytes), and any str at all
# but lone surrogates (which no decoding produces).
wire_text = st.binary(max_size=300).map(grammar.decode)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
texts = st.one_of(wire_text, any_text,
                  st.sampled_from(["..", ".", "a/b", "a" * 300, "/etc/passwd",
                                   "x 1", "x 1 " + "a" * 64, "x -1", "x ١٢",
                                   "x 99999999999999999999", "guest1", "Admin"]))


@FAST_SETTINGS
@given(st.binary(max_size=500))
def test_parse_client_line(raw):
    command = grammar.parse_client_line(raw)
    if command is not None:
        assert isinstance(command, grammar.Command)
        assert isinstance(command.name, str) and isinstance(command.arg, str)
        assert not UNSAFE_TEXT.search(command.name + command.arg), command
        assert command.name == command.name.lower()


@FAST_SETTINGS
@given(st.binary(max_size=500))
def test_parse_server_line(raw):
    line = grammar.parse_server_line(raw)
    assert isinstance(line, grammar.ServerLine) and line.kind in KINDS
    assert isinstance(line.text, str)
    assert not UNSAFE_TEXT.search(line.text + (line.name or "")), line
    if line.kind == "file":
        assert line.size >= 0 and re.fullmatch("[0-9a-f]{64}", line.sha256)


@FAST_SETTINGS
@given(texts)
def test_parse_upload(arg):
    try:
        request = grammar.parse_upload(arg)
    except ChatError as e:
        assert e.message
        return
    assert isinstance(request.name, str)
    assert isinstance(request.size, int) and request.size >= 0
    assert request.sha256 is None or re.fullmatch("[0-9a-f]{64}", request.sha256)


@FAST_SETTINGS
@given(texts)
def test_check_name(name):
    try:
        result = grammar.check_name(name)
    except ChatError as e:
        assert e.message
        return
    assert result == name and name.isascii() and 1 <= len(name) <= 32
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_\-.\[\]{}|^]*", name)
    assert grammar.name_key(name) not in grammar.RESERVED_NAMES


@FAST_SETTINGS
@given(texts)
def test_check_filename(name):
    try:
        result = grammar.check_filename(name)
    except ChatError as e:
        assert e.message
        return
    assert result and result not in (".", "..")
    assert "/" not in result and "\\" not in result
    assert not UNSAFE_TEXT.search(result) and "\ufffd" not in result
    assert len(result.encode("utf-8")) <= 255


@FAST_SETTINGS
@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-.\[\]{}|^]{0,31}", fullmatch=True), wire_text)
def test_formatted_lines_parse_back(name, text):
    try:
        grammar.check_name(name)
    except ChatError:
        return
    raw = grammar.encode_line(grammar.chat(name, text))
    assert raw == f"<{name}> {text}\r\n".encode("utf-8")  # wire_text is already clean
    assert unsafe_in(raw) is None
    assert grammar.parse_server_line(raw[:-2]) == grammar.ServerLine("chat", text, name)


# --- a whole server connection -------------------------------------------

FRAGMENTS = [
    b"\n", b"\r\n", b"\r", b"/nick ", b"/nick mallory\n", b"/nick Mallory\n",
    b"/me ", b"/msg guest2 ", b"/msg nobody x\n", b"/who\n", b"/files\n", b"/help\n",
    b"/quit bye\n", b"/download a\n", b"/download ../x\n", b"/upload a 3\n",
    b"/upload a 3 " + b"0" * 64 + b"\n", b"/upload ../x 2\n", b"/upload a 99999999999\n",
    b"/upload a -1\n", b"/upload a\n", b"/upload  0\n", b"//", b"/", b"/\xff\n",
    b"\x1b[31m", b"\x1b]0;t\x07", b"\xe2\x80\xae", b"\xc2\x9b", b"\x00", b"\xff",
    b"x" * 5000, b"y" * 4096, b"\t", b"\x7f", b"abc",
]
chunks = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(FRAGMENTS),
                            st.just(None)),  # None: a second passes
                  max_size=40)


def _split_output(data):
    """
    Server output without the raw bytes of downloads.
    """
    lines, rest = [], data
    while rest:
        end = rest.find(b"\r\n")
        if end < 0:
            return lines, rest
        line, rest = rest[:end + 2], rest[end + 2:]
        lines.append(line)
        match = re.fullmatch(rb"FILE (\d+) [0-9a-f]{64} .+\r\n", line)
        if match:
            rest = rest[int(match.group(1)):]
    return lines, b""


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks)
def test_any_bytes_into_a_connection(pieces):
    failures = []

    def observe(event):
        if event.get("log_failure") is not None:
            failures.append(event["log_failure"])

    directory = tempfile.mkdtemp()
    globalLogPublisher.addObserver(observe)
    try:
        clock = task.Clock()
        store = FileStore(directory, max_size=1024, blocking=defer.maybeDeferred)
        limits = Limits(upload_timeout=3)
        factory = ChatFactory(Hub(), store, clock, server_name="test", limits=limits)
        users = []
        for port in (1, 2):
            p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
            t = StringTransport()
            p.makeConnection(t)
            users.append((p, t))
        (p, t), (other, other_t) = users
        for piece in pieces:
            if t.disconnecting:
                break
            if piece is None:
                clock.advance(1)
            else:
                p.dataReceived(piece)
        clock.advance(10)
        p.connectionLost(Failure(ConnectionDone()))
        clock.advance(10)
        for transport in (t, other_t):
            lines, partial = _split_output(transport.value())
            assert partial == b"", partial
            for line in lines:
                if not line.startswith(b"FILE "):
                    problem = unsafe_in(line)
                    assert problem is None, problem
            assert not [l for l in lines if l.startswith(b"! internal error")], lines
        assert failures == [], failures[0].getTraceback()
    finally:
        globalLogPublisher.removeObserver(observe)
        shutil.rmtree(directory, ignore_errors=True)

