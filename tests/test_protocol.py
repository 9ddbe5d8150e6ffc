"""
``ChatProtocol`` and its ``TransferReceiver`` framing as units: real
protocols on ``StringTransport``s, time from a ``task.Clock``, input fed at
every chunk size.
"""

import hashlib
import os

import pytest
from twisted.internet import defer, task
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure

from chatd import grammar, transfer
from chatd.hub import Hub
from chatd.limits import Limits
from chatd.factory import ChatFactory
from chatd.store import FileStore

FFFD = "\ufffd"
CHUNKS = [1, 2, 3, None]  # None: everything in one dataReceived
NO_PACING = Limits(rate=0)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def assert_clean(data):
    """
    The server sends no control bytes but CRLF line ends.
    """
    body = data.replace(b"\r\n", b"")
    assert not [b for b in body if b < 0x20 or b == 0x7F], data


def chunked(data, size):
    if size is None:
        return [data]
    return [data[i:i + size] for i in range(0, len(data), size)]


class User:
    """
    One protocol on a StringTransport, fed like a socket.
    """

    def __init__(self, server):
        self.server = server
        self.p = server.factory.buildProtocol(None)
        self.t = StringTransport()
        self.p.makeConnection(self.t)

    def feed(self, data, chunk=None):
        for piece in chunked(data, chunk):
            self.p.dataReceived(piece)

    def say(self, line):
        self.feed(line.encode("utf-8") + b"\n")

    def raw(self):
        data = self.t.value()
        self.t.clear()
        return data

    def lines(self):
        """
        The lines written since the last call (all complete).
        """
        data = self.raw()
        assert data == b"" or data.endswith(b"\r\n"), data
        assert_clean(data)
        return data.decode("utf-8").split("\r\n")[:-1]

    def pump_file(self):
        """
        Let FileSender (a pull producer) run until the file is out; returns
        how many reads it took.
        """
        reads = 0
        while isinstance(self.t.producer, FileSender):
            self.t.producer.resumeProducing()
            reads += 1
            assert reads < 1000
        return reads


class Server:
    def __init__(self, tmp_path, max_size=1024, limits=NO_PACING,
                 blocking=defer.maybeDeferred):
        self.clock = task.Clock()
        self.data_dir = tmp_path / "data"
        self.store = FileStore(self.data_dir, keep=5, max_size=max_size,
                               blocking=blocking, clock=lambda: 0.0)
        self.hub = Hub()
        self.factory = ChatFactory(self.hub, self.store, self.clock,
                                   server_name="test", limits=limits)

    def connect(self):
        return User(self)

    def pair(self):
        """
        Two connected users, greetings and joins read.
        """
        a, b = self.connect(), self.connect()
        a.lines(), b.lines()
        return a, b

    def drain(self):
        """
        Run the clock until nothing is scheduled (flood pacing resumes).
        """
        for _ in range(10000):
            calls = self.clock.getDelayedCalls()
            if not calls:
                return
            self.clock.advance(max(0, min(c.getTime() for c in calls) - self.clock.seconds()))
        raise AssertionError("clock never settles")

    def stored(self):
        return {e.name: open(self.store.path(e).path, "rb").read() for e in self.store.entries}

    def temp_files(self):
        return os.listdir(self.data_dir / "tmp")

    def put(self, name, data):
        upload = self.store.begin(name, len(data), "carol")
        upload.write(data)
        upload.finish()
        return self.store.find(name)


@pytest.fixture
def server(tmp_path):
    return Server(tmp_path)


# --- greeting and a scripted session ---------------------------------------


def test_greeting_and_join(server):
    a = server.connect()
    assert a.lines() == ["*** Welcome to test: 1 online, you are guest1; "
                         "files up to 1 KiB; type /help for commands"]
    b = server.connect()
    assert b.lines() == ["*** Welcome to test: 2 online, you are guest2; "
                         "files up to 1 KiB; type /help for commands"]
    assert a.lines() == ["*** guest2 joined"]


SCRIPT = (
    b"hello everyone\n"
    b"/nick alice\r\n"
    b"/msg bob psst, secret\n"
    b"/msg zed hi\n"
    b"/msg bob\n"
    b"/who\r\n"
    b"/me waves\n"
    b"/me\n"
    b"/help\n"
    b"/frobnicate now\n"
    b"//slash at the start\n"
    + "caf\u00e9 \u20ac \U0001f389\n".encode("utf-8")
    + b"bell\x07 esc\x1b[31mred\x1b[0m c1\xc2\x9b bad\xff\xfe nul\x00\n"
    b"\n"
    b"  \r\n"
    b"/\n"
    b"/   \n"
    b"/nick admin\n"
    b"/nick Bob\n"
    b"/NICK alice2\n"
    b"last line\r\n"
)

ALICE_SEES = [
    "*** guest1 is now known as alice",
    "[private to bob] psst, secret",
    "! no such user: zed",
    "! usage: /msg NAME TEXT",
    "- online (2): alice, bob",
    "! usage: /me ACTION",
    # /help, as docs/PROTOCOL.md lists the commands (files up to 1 KiB here)
    "- commands:",
    "- TEXT                 say TEXT in your current room (//TEXT for a line starting with /)",
    "- /nick NAME           change your name",
    "- /msg NAME TEXT       private message to NAME only",
    "- /me ACTION           say what you are doing",
    "- /who [ROOM]          who is in your current room (or ROOM)",
    "- /join ROOM           enter ROOM (#name, made if new) and talk there",
    "- /part [ROOM] [REASON]  leave ROOM (default: the current one)",
    "- /rooms               the rooms, most members first",
    "- /topic [ROOM] [TEXT]  show or set the topic of a room",
    "- /history [ROOM] [N]  the last N lines of a room (up to 500)",
    "- /files               the shared files, newest first",
    "- /upload NAME SIZE [SHA256]  then SIZE raw bytes: share a file (up to 1 KiB)",
    "- /upload-resume NAME SIZE SHA256  go on with a cut-off upload",
    "- /download NAME       get a file: a line 'FILE SIZE SHA256 NAME', then the bytes",
    "- /download-from OFFSET NAME  get a file from byte OFFSET on",
    "- /help                this list",
    "- /quit [REASON]       leave",
    "! unknown command: /frobnicate (try /help)",
    "! name is reserved: admin",
    "! name is taken: Bob",
    "*** alice is now known as alice2",
]

BOB_SEES = [
    "<guest1> hello everyone",
    "*** guest1 is now known as alice",
    "[private] <alice> psst, secret",
    "* alice waves",
    "<alice> /slash at the start",
    "<alice> caf\u00e9 \u20ac \U0001f389",
    f"<alice> bell{FFFD} esc{FFFD}[31mred{FFFD}[0m c1{FFFD} bad{FFFD}{FFFD} nul{FFFD}",
    "*** alice is now known as alice2",
    "<alice2> last line",
]


def run_script(tmp_path, chunk, limits):
    server = Server(tmp_path, limits=limits)
    alice, bob = server.pair()
    bob.say("/nick bob")
    server.drain()
    alice.lines(), bob.lines()
    alice.feed(SCRIPT, chunk)
    server.drain()
    assert server.clock.getDelayedCalls() == []
    return alice.lines(), bob.lines()


@pytest.mark.parametrize("chunk", CHUNKS)
def test_scripted_session_at_every_chunk_size(tmp_path, chunk):
    alice, bob = run_script(tmp_path, chunk, NO_PACING)
    assert alice == ALICE_SEES
    assert bob == BOB_SEES


@pytest.mark.parametrize("chunk", [1, None])
def test_scripted_session_with_flood_pacing(tmp_path, chunk):
    """
    The default limits pace this burst of lines: slower, but nothing is
    lost or reordered.
    """
    alice, bob = run_script(tmp_path, chunk, Limits())
    assert alice == ALICE_SEES
    assert bob == BOB_SEES


def test_help_shows_the_file_limit(server):
    a, _ = server.pair()
    a.say("/help")
    assert "- /upload NAME SIZE [SHA256]  then SIZE raw bytes: share a file (up to 1 KiB)" \
        in a.lines()


def test_quit_with_reason(server):
    a, b = server.pair()
    a.say("/quit gotta go")
    assert a.lines() == ["*** bye"]
    assert a.t.disconnecting
    assert b.lines() == ["*** guest1 left (gotta go)"]
    a.p.connectionLost(Failure(ConnectionLost()))
    assert b.lines() == []
    assert server.hub.names() == ["guest2"]


def test_connection_lost_is_announced(server):
    a, b = server.pair()
    a.p.connectionLost(Failure(ConnectionLost()))
    assert b.lines() == ["*** guest1 left (connection lost)"]
    assert server.hub.names() == ["guest2"]


def test_internal_error_is_one_line_not_a_traceback(server, monkeypatch):
    a, b = server.pair()

    def broken(client, text):
        raise RuntimeError("boom")

    monkeypatch.setattr(server.hub, "say", broken)
    a.say("hello")
    assert a.lines() == ["! internal error; your line was not handled"]
    assert not a.t.disconnecting
    monkeypatch.undo()
    a.say("hello again")
    assert b.lines() == ["<guest1> hello again"]


# --- the unterminated fragment ---------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS)
def test_fragment_is_a_line_after_half_a_second(server, chunk):
    a, b = server.pair()
    a.feed(b"no newline here", chunk)
    assert b.lines() == []
    server.clock.advance(0.49)
    assert b.lines() == []
    server.clock.advance(0.01)
    assert b.lines() == ["<guest1> no newline here"]
    a.feed(b"\n")  # a late newline ends an empty line: nothing
    server.clock.advance(1)
    assert b.lines() == [] and a.lines() == []
    assert server.clock.getDelayedCalls() == []


def test_fragment_timer_restarts_with_each_chunk(server):
    a, b = server.pair()
    a.feed(b"abc")
    server.clock.advance(0.4)
    a.feed(b"def")
    server.clock.advance(0.4)
    assert b.lines() == []
    server.clock.advance(0.1)
    assert b.lines() == ["<guest1> abcdef"]


def test_newline_before_the_delay_makes_one_line(server):
    a, b = server.pair()
    a.feed(b"abc")
    server.clock.advance(0.3)
    a.feed(b"def\n")
    assert b.lines() == ["<guest1> abcdef"]
    server.clock.advance(5)
    assert b.lines() == []
    assert server.clock.getDelayedCalls() == []


def test_fragment_after_complete_lines(server):
    a, b = server.pair()
    a.feed(b"one\ntwo\nthr")
    assert b.lines() == ["<guest1> one", "<guest1> two"]
    server.clock.advance(0.5)
    assert b.lines() == ["<guest1> thr"]


def test_fragment_command(server):
    a, _ = server.pair()
    a.feed(b"/who")
    assert a.lines() == []
    server.clock.advance(0.5)
    assert a.lines() == ["- online (2): guest1, guest2"]


def test_no_fragment_inside_an_upload(server):
    a, b = server.pair()
    a.feed(b"/upload a.txt 10\nhello")
    server.clock.advance(5)
    assert a.lines() == [] and b.lines() == []
    a.feed(b"world")
    assert a.lines() == [f"*** stored a.txt: 10 bytes, sha256 {sha(b'helloworld')}"]
    assert server.stored() == {"a.txt": b"helloworld"}


# --- uploads: framing --------------------------------------------------------


DATA = (b"first\nsecond\r\n\x00\xff\xfe binary\n*** fake notice\n<bob> fake chat\n"
        b"/quit\n/nick admin\r\n" + bytes(range(256)) + b"\n")


def upload_stream(name, data, checksum=False, after=b"/files\nafter the upload\n"):
    header = f"/upload {name} {len(data)}" + (f" {sha(data)}" if checksum else "") + "\n"
    return header.encode("utf-8") + data + after


@pytest.mark.parametrize("checksum", [False, True])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_upload_framing_at_every_chunk_size(server, chunk, checksum):
    a, b = server.pair()
    name = "my r\u00e9sum\u00e9.txt"
    a.feed(upload_stream(name, DATA, checksum), chunk)
    n, digest = len(DATA), sha(DATA)
    assert a.lines() == [
        f"*** stored {name}: {n} bytes, sha256 {digest}",
        f"- {name}: {n} bytes, shared by guest1 at 1970-01-01 00:00:00 UTC, sha256 {digest}",
    ]
    assert n == 333
    assert b.lines() == [f"*** guest1 shared {name} (333 bytes)",
                         "<guest1> after the upload"]
    assert server.stored() == {name: DATA}
    assert server.temp_files() == []
    assert a.p.line_mode


@pytest.mark.parametrize("chunk", [1, None])
def test_upload_with_flood_pacing(tmp_path, chunk):
    server = Server(tmp_path, limits=Limits())
    a, b = server.pair()
    stream = b"".join(upload_stream(f"f{i}", DATA, after=b"") for i in range(12))
    a.feed(stream + b"/files\nend\n", chunk)
    server.drain()
    lines = a.lines()
    assert [l for l in lines if l.startswith("*** stored")] == [
        f"*** stored f{i}: {len(DATA)} bytes, sha256 {sha(DATA)}" for i in range(12)]
    assert [l.split(":")[0] for l in lines if l.startswith("- ")] == \
        ["- f11", "- f10", "- f9", "- f8", "- f7"]
    assert b.lines()[-1] == "<guest1> end"
    assert list(server.stored()) == ["f11", "f10", "f9", "f8", "f7"]


def test_empty_upload(server):
    a, b = server.pair()
    a.feed(b"/upload empty.txt 0\n/files\n")
    assert a.lines() == [
        f"*** stored empty.txt: 0 bytes, sha256 {sha(b'')}",
        f"- empty.txt: 0 bytes, shared by guest1 at 1970-01-01 00:00:00 UTC, sha256 {sha(b'')}",
    ]
    assert b.lines() == ["*** guest1 shared empty.txt (0 bytes)"]


def test_replies_wait_for_the_upload_to_be_committed(tmp_path):
    """
    The fsync runs in a thread in the daemon; lines after the bytes wait
    for it, so "/files" right after an upload lists the new file.
    """
    pending = []

    def blocking(f, *args):
        d = defer.Deferred()
        pending.append((d, f, args))
        return d

    server = Server(tmp_path, blocking=blocking)
    a, b = server.pair()
    a.feed(upload_stream("a.txt", b"hello"), 1)
    assert a.lines() == [] and b.lines() == []
    server.clock.advance(1)  # no fragment is taken from paused input
    assert a.lines() == [] and b.lines() == []
    while pending:  # the worker's writes (a byte at a time here), then the fsync
        d, f, args = pending.pop(0)
        d.callback(f(*args))
        if pending:
            assert a.lines() == [] and b.lines() == []
    assert a.lines() == [
        f"*** stored a.txt: 5 bytes, sha256 {sha(b'hello')}",
        f"- a.txt: 5 bytes, shared by guest1 at 1970-01-01 00:00:00 UTC, sha256 {sha(b'hello')}",
    ]
    assert b.lines() == ["*** guest1 shared a.txt (5 bytes)", "<guest1> after the upload"]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_over_limit_refused_before_any_byte_and_swallowed(server, chunk):
    a, b = server.pair()
    big = (b"hello\n*** fake\n<guest2> fake\n/nick mallory\n" * 60)[:2000]
    a.feed(b"/upload big.bin 2000\n", chunk)
    assert a.lines() == ["! file too large: big.bin is 2 KiB (2000 bytes); "
                         "the limit is 1 KiB (1024 bytes)"]
    assert server.temp_files() == [] and server.store.entries == []
    a.feed(big, chunk)
    assert a.lines() == [] and b.lines() == []
    a.feed(b"/who\nstill here\n", chunk)
    assert a.lines() == ["- online (2): guest1, guest2"]
    assert b.lines() == ["<guest1> still here"]
    assert os.listdir(server.data_dir / "files") == []


@pytest.mark.parametrize("name, why", [
    ("../../x", "must not contain '/'"),
    ("/etc/passwd", "must not contain '/'"),
    ("..", "must not be empty, '.' or '..'"),
    ("a\\b", "must not contain '/' or '\\'"),
    ("a\x1bb", "control"),
    ("x" * 256, "longer than 255 bytes"),
])
@pytest.mark.parametrize("chunk", [1, None])
def test_bad_names_refused_and_bytes_swallowed(server, chunk, name, why):
    a, b = server.pair()
    a.feed(upload_stream(name, b"evil\n*** x\n", after=b"/who\n"), chunk)
    [error, who] = a.lines()
    assert error.startswith("! ") and why in error
    assert who.startswith("- online (2)")
    assert b.lines() == []
    assert server.store.entries == [] and server.temp_files() == []


def test_bad_size_is_refused_and_no_bytes_expected(server):
    a, b = server.pair()
    a.feed(b"/upload a.txt lots\nhello\n/upload a.txt\n/upload\n")
    assert a.lines() == [
        "! upload size must be a whole number of bytes, not 'lots'",
        "! usage: /upload NAME SIZE [SHA256]",
        "! usage: /upload NAME SIZE [SHA256]",
    ]
    assert b.lines() == ["<guest1> hello"]


def test_checksum_mismatch_refused(server):
    a, b = server.pair()
    wrong = sha(b"other")
    a.feed(f"/upload a.txt 5 {wrong}\n".encode() + b"hello" + b"/files\n")
    assert a.lines() == [
        f"! sha256 mismatch for a.txt: got {sha(b'hello')}, expected {wrong}; not stored",
        "- no files shared yet",
    ]
    assert b.lines() == []
    assert server.temp_files() == []


def test_seven_uploads_keep_five_and_tell_everyone(server):
    a, b = server.pair()
    for i in range(1, 8):
        a.feed(upload_stream(f"f{i}", b"x", after=b""))
    a.lines()
    assert [l for l in b.lines() if "removed" in l] == [
        "*** f1 was removed (only the 5 newest files are kept)",
        "*** f2 was removed (only the 5 newest files are kept)",
    ]
    a.say("/files")
    assert [l.split(":")[0] for l in a.lines()] == ["- f7", "- f6", "- f5", "- f4", "- f3"]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_half_close_after_pipelined_upload(server, chunk):
    a, b = server.pair()
    a.feed(b"/upload a.txt 5\nhello/files", chunk)  # no final newline
    a.p.readConnectionLost()
    assert a.lines() == [
        f"*** stored a.txt: 5 bytes, sha256 {sha(b'hello')}",
        f"- a.txt: 5 bytes, shared by guest1 at 1970-01-01 00:00:00 UTC, sha256 {sha(b'hello')}",
    ]
    assert a.t.disconnecting


def test_half_close_mid_upload(server):
    a, b = server.pair()
    a.feed(b"/upload a.txt 10\nhello")
    a.p.readConnectionLost()
    assert a.lines() == ["! upload of a.txt cut off: 5 bytes missing; not stored"]
    assert a.t.disconnecting
    assert server.temp_files() == [] and server.store.entries == []
    a.p.connectionLost(Failure(ConnectionLost()))
    assert b.lines() == ["*** guest1 left (connection lost)"]


@pytest.mark.parametrize("chunk", [1, None])
def test_connection_lost_mid_upload(server, chunk):
    a, b = server.pair()
    a.feed(b"/upload a.txt 1000\n" + b"x" * 500, chunk)
    assert len(server.temp_files()) == 1
    a.p.connectionLost(Failure(ConnectionLost()))
    assert server.temp_files() == [] and server.store.entries == []
    assert b.lines() == ["*** guest1 left (connection lost)"]
    assert server.clock.getDelayedCalls() == []


def test_idle_upload_times_out(server):
    a, b = server.pair()
    a.feed(b"/upload a.txt 10\nhel")
    server.clock.advance(59)
    a.feed(b"lo")  # progress restarts the wait
    server.clock.advance(59)
    assert a.lines() == [] and not a.t.disconnecting
    server.clock.advance(1)
    assert a.lines() == ["! upload of a.txt timed out after 60 s idle; not stored"]
    assert a.t.disconnecting
    assert server.temp_files() == [] and server.store.entries == []


# --- downloads ---------------------------------------------------------------


def download_payload(size):
    pattern = b"line\nwith CRLF\r\n*** not a notice\n\x00\xff"
    return (pattern * (size // len(pattern) + 1))[:size]


@pytest.fixture
def big_server(tmp_path):
    return Server(tmp_path, max_size=4 * 2**20)


def test_download_header_then_exact_bytes_then_held_lines(big_server):
    server = big_server
    payload = download_payload(int(2.5 * transfer._ChunkedFileSender.CHUNK_SIZE))
    server.put("big.bin", payload)
    a, b = server.pair()
    a.say("/download big.bin")
    header = f"FILE {len(payload)} {sha(payload)} big.bin\r\n".encode()
    assert a.raw() == header
    b.say("while sending 1")
    a.say("/who")
    b.say("while sending 2")
    reads = a.pump_file()
    assert reads >= 3  # several chunks, each pulled by the transport
    out = a.raw()
    assert out[:len(payload)] == payload
    assert out[len(payload):].decode().split("\r\n")[:-1] == [
        "<guest2> while sending 1",
        "- online (2): guest1, guest2",
        "<guest2> while sending 2",
    ]
    b.say("after")
    assert a.lines() == ["<guest2> after"]


def test_download_line_parses_as_file(big_server):
    server = big_server
    server.put("my file \u65e5\u672c.txt", b"abc\n")
    a, _ = server.pair()
    a.say("/download my file \u65e5\u672c.txt")
    first = a.raw()
    line = grammar.parse_server_line(first[:-2])
    assert (line.kind, line.size, line.sha256, line.text) == \
        ("file", 4, sha(b"abc\n"), "my file \u65e5\u672c.txt")
    a.pump_file()
    assert a.raw() == b"abc\n"


def test_download_empty_file(big_server):
    server = big_server
    server.put("empty", b"")
    a, b = server.pair()
    a.say("/download empty")
    a.pump_file()
    b.say("next")
    assert a.raw() == f"FILE 0 {sha(b'')} empty\r\n<guest2> next\r\n".encode()


def test_two_downloads_in_a_row(big_server):
    server = big_server
    one, two = download_payload(300_000), b"second\n" * 1000
    server.put("one", one)
    server.put("two", two)
    a, _ = server.pair()
    a.feed(b"/download one\n/download two\n/files\n")
    a.pump_file()
    out = a.raw()
    expected = (f"FILE {len(one)} {sha(one)} one\r\n".encode() + one
                + f"FILE {len(two)} {sha(two)} two\r\n".encode() + two)
    assert out[:len(expected)] == expected
    assert out[len(expected):].startswith(b"- two: ")


@pytest.mark.parametrize("held, skipped", [(3, 2), (1000, 5)])
def test_held_lines_are_bounded(big_server, monkeypatch, held, skipped):
    server = big_server
    monkeypatch.setattr(transfer, "HELD_LINES", held)
    payload = download_payload(100_000)
    server.put("f", payload)
    a, b = server.pair()
    a.say("/download f")
    a.raw()
    for i in range(held + skipped):
        b.say(f"line {i}")
    a.pump_file()
    out = a.raw()
    assert out[:len(payload)] == payload
    lines = out[len(payload):].decode().split("\r\n")[:-1]
    assert lines == [f"*** {skipped} lines skipped while a file was sent"] + \
        [f"<guest2> line {i}" for i in range(skipped, held + skipped)]


def test_held_bytes_are_bounded(tmp_path):
    server = Server(tmp_path, max_size=2**20, limits=Limits(rate=0, sendq=4096))
    server.put("f", b"x" * 1000)
    a, b = server.pair()
    a.say("/download f")
    a.raw()
    for i in range(20):
        b.say(f"{i:02d} " + "y" * 500)
    a.pump_file()
    out = a.raw()[1000:]
    lines = out.decode().split("\r\n")[:-1]
    notice, rest = lines[0], lines[1:]
    assert notice == f"*** {20 - len(rest)} lines skipped while a file was sent"
    assert 1 <= len(rest) < 20
    assert sum(len(l) + 2 for l in rest) <= 4096
    assert rest[-1].startswith("<guest2> 19 ")  # the newest are kept


def test_quit_during_download_closes_after_the_file(big_server):
    server = big_server
    payload = download_payload(300_000)
    server.put("f", payload)
    a, b = server.pair()
    a.feed(b"/download f\n/quit done\n")
    assert b.lines() == ["*** guest1 left (done)"]
    assert not a.t.disconnecting
    a.pump_file()
    out = a.raw()
    assert out.endswith(payload + b"*** bye\r\n")
    assert a.t.disconnecting


@pytest.mark.parametrize("line, error", [
    ("/download nope", "! no such file: nope"),
    ("/download", "! usage: /download NAME"),
    ("/download BIG.bin", "! no such file: BIG.bin"),
])
def test_download_errors(big_server, line, error):
    big_server.put("big.bin", b"x")
    a, _ = big_server.pair()
    a.say(line)
    assert a.lines() == [error]
    assert a.t.producer is None or not isinstance(a.t.producer, FileSender)


def test_download_of_a_vanished_file(big_server):
    entry = big_server.put("gone", b"x")
    os.remove(big_server.store.path(entry).path)
    a, b = big_server.pair()
    a.say("/download gone")
    assert a.lines() == ["! no such file: gone"]
    b.say("chat goes on")
    assert a.lines() == ["<guest2> chat goes on"]


def test_upload_then_download_round_trip(big_server):
    a, b = big_server.pair()
    a.feed(upload_stream("rt.bin", DATA, after=b""), 2)
    assert a.lines() == [f"*** stored rt.bin: {len(DATA)} bytes, sha256 {sha(DATA)}"]
    b.lines()
    b.say("/download rt.bin")
    b.pump_file()
    assert b.raw() == f"FILE {len(DATA)} {sha(DATA)} rt.bin\r\n".encode() + DATA


def test_server_name_is_cleaned_of_control_bytes(tmp_path):
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from chatd.hub import Hub
    from chatd.factory import ChatFactory
    from chatd.store import FileStore

    factory = ChatFactory(Hub(), FileStore(tmp_path), Clock(), server_name="evil\x1b[2Jname")
    p = factory.buildProtocol(None)
    transport = StringTransport()
    p.makeConnection(transport)
    greeting = transport.value()
    assert b"\x1b" not in greeting
    assert "evil\ufffd[2Jname".encode() in greeting


def test_paced_lines_of_a_sender_who_left_are_not_relayed(tmp_path):
    server = Server(tmp_path, limits=Limits(rate=5, burst=2))
    a, b = server.pair()
    a.feed(b"one\ntwo\nthree\nfour\n")
    assert b.lines() == [f"<{a.p.name}> one", f"<{a.p.name}> two"]
    a.p.connectionLost(Failure(ConnectionLost()))
    assert server.clock.getDelayedCalls() == []
    server.drain()
    assert b.lines() == [f"*** {a.p.name} left (connection lost)"]


class TCPLikeTransport(StringTransport):
    """
    A StringTransport with the step sizes of Twisted's TCP transport.
    """

    bufferSize = 2**16
    SEND_LIMIT = 128 * 1024


def test_file_transfers_widen_the_tcp_steps_and_restore_them(big_server):
    server = big_server
    user = User.__new__(User)
    user.server, user.t = server, TCPLikeTransport()
    user.p = server.factory.buildProtocol(None)
    user.p.makeConnection(user.t)
    user.feed(b"/upload a.bin 10\nhello")
    assert user.t.bufferSize == transfer.RAW_READ_SIZE
    user.feed(b"world")
    assert user.t.bufferSize == 2**16
    user.raw()
    user.say("/download a.bin")
    assert user.t.SEND_LIMIT == transfer.FILE_SEND_LIMIT
    user.pump_file()
    assert user.t.SEND_LIMIT == 128 * 1024
    assert user.raw().startswith(f"FILE 10 {sha(b'helloworld')} a.bin\r\n".encode())


class CountingTransport(StringTransport):
    def __init__(self):
        StringTransport.__init__(self)
        self.writes = 0

    def write(self, data):
        self.writes += 1
        StringTransport.write(self, data)


@pytest.fixture
def coalescing(tmp_path):
    server = Server(tmp_path, max_size=4 * 2**20)
    server.factory = ChatFactory(server.hub, server.store, server.clock,
                                 server_name="test", limits=NO_PACING,
                                 coalesce_writes=True)
    return server


def counted_user(server):
    user = User.__new__(User)
    user.server, user.t = server, CountingTransport()
    user.p = server.factory.buildProtocol(None)
    user.p.makeConnection(user.t)
    server.clock.advance(0)
    return user


def test_lines_of_one_pass_go_out_in_one_write(coalescing):
    a, b = counted_user(coalescing), counted_user(coalescing)
    coalescing.clock.advance(0)
    a.raw(), b.raw()
    before = b.t.writes
    coalescer = coalescing.factory.coalescer
    passes, writes = coalescer.passes, coalescer.writes
    a.feed(b"one\ntwo\nthree\n")
    assert b.raw() == b""  # not before the end of the pass
    coalescing.clock.advance(0)
    assert b.t.writes == before + 1
    assert (coalescer.passes, coalescer.writes) == (passes + 1, writes + 1)  # counted
    assert b.lines() == ["<guest1> one", "<guest1> two", "<guest1> three"]


def test_coalesced_lines_go_out_before_a_download_and_before_closing(coalescing):
    coalescing.put("f.bin", b"\x00data\n")
    a, b = counted_user(coalescing), counted_user(coalescing)
    coalescing.clock.advance(0)
    a.raw(), b.raw()
    a.say("before")
    b.say("/download f.bin")
    b.pump_file()
    coalescing.clock.advance(0)
    digest = sha(b"\x00data\n")
    assert b.raw() == (b"<guest1> before\r\n"
                       + f"FILE 6 {digest} f.bin\r\n".encode()
                       + b"\x00data\n")
    a.say("last words")
    b.say("/quit")
    assert b.t.disconnecting
    assert b.raw() == b"<guest1> last words\r\n*** bye\r\n"
