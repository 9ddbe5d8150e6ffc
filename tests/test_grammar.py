"""
The wire grammar: client line parsing, text cleaning, name and file-name
rules, upload arguments, sizes, and server lines that user text can never
imitate.
"""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd import grammar
from chatd.grammar import ChatError, Command, ServerLine

import spec

FFFD = "\ufffd"
SHA = hashlib.sha256(b"hello").hexdigest()


def wire(line):
    """
    What the server sends for ``line``, split back into one line as a client
    reads it: exactly one CRLF, at the end.
    """
    data = grammar.encode_line(line)
    assert data.endswith(b"\r\n")
    body = data[:-2]
    assert b"\n" not in body and b"\r" not in body, data
    return body


# --- client lines ----------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    (b"hello world", Command("", "hello world")),
    (b"  indented stays  ", Command("", "  indented stays  ")),
    (b"hello\r", Command("", "hello")),
    (b"//etc/passwd is a path", Command("", "/etc/passwd is a path")),
    (b"//", Command("", "/")),
    (b"/nick alice", Command("nick", "alice")),
    (b"/NICK alice\r", Command("nick", "alice")),
    (b"/msg bob   hi there  ", Command("msg", "bob   hi there")),
    (b"/who", Command("who", "")),
    (b"/quit\r", Command("quit", "")),
    (b"/frob x y", Command("frob", "x y")),
    (b"caf\xc3\xa9", Command("", "caf\u00e9")),
])
def test_parse_client_line(raw, expected):
    assert grammar.parse_client_line(raw) == expected


@pytest.mark.parametrize("raw", [b"", b"\r", b"   ", b" \t \r", b"/", b"/  \r"])
def test_parse_client_line_empty_is_none(raw):
    assert grammar.parse_client_line(raw) is None


def test_parse_client_line_cleans_control_bytes():
    command = grammar.parse_client_line(b"a\x1b[31mred\x07\x00\x7f")
    assert command == Command("", f"a{FFFD}[31mred{FFFD}{FFFD}{FFFD}")


def test_parse_client_line_only_strips_one_trailing_cr():
    # A CR inside or before the final one is a control character.
    assert grammar.parse_client_line(b"a\rb\r\r") == Command("", f"a{FFFD}b{FFFD}")


# --- cleaning ----------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("plain ascii", "plain ascii"),
    ("caf\u00e9 \u65e5\u672c \U0001f389", "caf\u00e9 \u65e5\u672c \U0001f389"),
    ("tab\there", "tab here"),
    ("nul\x00", f"nul{FFFD}"),
    ("bell\x07", f"bell{FFFD}"),
    ("cr\rlf\n", f"cr{FFFD}lf{FFFD}"),
    ("del\x7f", f"del{FFFD}"),
    ("c1 \x80 \x85 \x9b \x9f", f"c1 {FFFD} {FFFD} {FFFD} {FFFD}"),
    ("\xa0nbsp kept", "\xa0nbsp kept"),
    ("\x1b[2J\x1b[31mred", f"{FFFD}[2J{FFFD}[31mred"),
    ("\x1b]0;title\x07", f"{FFFD}]0;title{FFFD}"),
    ("\x9b31m", f"{FFFD}31m"),
    ("abc\u202edcba", f"abc{FFFD}dcba"),
    ("\u202a\u202b\u202c\u202d\u202e", FFFD * 5),
    ("\u2066\u2067\u2068\u2069", FFFD * 4),
    ("\u200e\u200f\u061c", FFFD * 3),
    ("line\u2028sep\u2029para", f"line{FFFD}sep{FFFD}para"),
])
def test_clean_text(text, expected):
    assert grammar.clean_text(text) == expected


def test_clean_text_replaces_exactly_what_the_protocol_lists():
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    assert grammar.clean_text(every) == spec.cleaned(every)


@pytest.mark.parametrize("raw, expected", [
    (b"\xff\xfe ok", f"{FFFD}{FFFD} ok"),
    (b"\xc0\x80", f"{FFFD}{FFFD}"),  # overlong NUL
    (b"caf\xc3", f"caf{FFFD}"),  # truncated sequence
    (b"\xed\xa0\x80", FFFD * 3),  # UTF-8 encoded surrogate
    (b"\xc2\x9b31m", f"{FFFD}31m"),  # C1 CSI, validly encoded
    (b"ok \xe2\x82\xac", "ok \u20ac"),
])
def test_decode(raw, expected):
    assert grammar.decode(raw) == expected


def test_encode_line_never_raises_on_surrogates():
    assert grammar.encode_line("a\ud800b") == b"a?b\r\n"


# --- nicknames -------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "a", "Z", "7", "_", "alice", "Bob_2", "a" * 32, "x-y.z", "a[b]", "n{1}|^",
    "guest", "serverx", "admins",
])
def test_check_name_accepts(name):
    assert grammar.check_name(name) == name


@pytest.mark.parametrize("name, why", [
    ("", "usage: /nick NAME"),
    ("a" * 33, "longer than 32"),
    ("bo b", "may only use"),
    ("<bob>", "may only use"),
    ("bob>", "may only use"),
    ("bo<b", "may only use"),
    ("b*b", "may only use"),
    ("b:b", "may only use"),
    ("b!b", "may only use"),
    ("b,b", "may only use"),
    ("b@b", "may only use"),
    ("b#b", "may only use"),
    ("b/b", "may only use"),
    ("b\tb", "may only use"),
    ("b\x1bb", "may only use"),
    ("b\u00f8b", "may only use"),
    ("b" + FFFD, "may only use"),
    ("-bob", "must not start with punctuation"),
    (".bob", "must not start with punctuation"),
    ("[bob]", "must not start with punctuation"),
    ("{bob}", "must not start with punctuation"),
    ("|bob", "must not start with punctuation"),
    ("^bob", "must not start with punctuation"),
    ("*", "may only use"),
    ("server", "reserved"),
    ("Server", "reserved"),
    ("ADMIN", "reserved"),
    ("cHaTd", "reserved"),
    ("root", "reserved"),
    ("Everyone", "reserved"),
])
def test_check_name_refuses(name, why):
    with pytest.raises(ChatError) as e:
        grammar.check_name(name)
    assert why in e.value.message


def test_name_key_is_case_insensitive():
    assert grammar.name_key("Alice") == grammar.name_key("aLICE")
    assert grammar.name_key("alice") != grammar.name_key("alice_")


@pytest.mark.parametrize("name, guest", [
    ("guest1", True), ("GUEST12", True), ("guest", False), ("guestx", False),
    ("guest1a", False), ("aguest1", False),
])
def test_is_guest_name(name, guest):
    assert grammar.is_guest_name(name) is guest


# --- file names ------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "a.txt", "my file.txt", "r\u00e9sum\u00e9 \u65e5\u672c.pdf", "..hidden", "a..b",
    ".profile", "x" * 255, "\u00e9" * 127 + "x",
])
def test_check_filename_accepts(name):
    assert grammar.check_filename(name) == name


def test_check_filename_strips_surrounding_space():
    assert grammar.check_filename("  a.txt ") == "a.txt"


@pytest.mark.parametrize("name, why", [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    (".", "must not be empty, '.' or '..'"),
    ("..", "must not be empty, '.' or '..'"),
    ("../../x", "must not contain '/'"),
    ("/etc/passwd", "must not contain '/'"),
    ("a/b", "must not contain '/'"),
    ("a\\b", "must not contain '/' or '\\'"),
    ("..\\..\\x", "must not contain '/' or '\\'"),
    ("a\x00b", "control"),
    ("a\nb", "control"),
    ("a\rb", "control"),
    ("a\x1b[31mb", "control"),
    ("a\x7fb", "control"),
    ("a\x85b", "control"),
    ("a\u202eb", "control"),
    ("a" + FFFD, "invalid"),
    ("x" * 256, "longer than 255 bytes"),
    ("\u00e9" * 128, "longer than 255 bytes"),  # 128 characters, 256 bytes
    ("\U0001f389" * 64, "longer than 255 bytes"),  # 64 characters, 256 bytes
])
def test_check_filename_refuses(name, why):
    with pytest.raises(ChatError) as e:
        grammar.check_filename(name)
    assert why in e.value.message


# --- upload arguments --------------------------------------------------------


@pytest.mark.parametrize("arg, name, size, sha", [
    ("a.txt 5", "a.txt", 5, None),
    ("a.txt 0", "a.txt", 0, None),
    ("my file name.txt 12", "my file name.txt", 12, None),
    ("a.txt 5 " + SHA, "a.txt", 5, SHA),
    ("a.txt 5 " + SHA.upper(), "a.txt", 5, SHA),
    ("a b  c.txt 5 " + SHA, "a b  c.txt", 5, SHA),
    ("r\u00e9sum\u00e9 \u65e5\u672c.pdf 1048576", "r\u00e9sum\u00e9 \u65e5\u672c.pdf", 1048576, None),
    # A name that merely ends in a number is still split at the last space.
    ("report 2024 77", "report 2024", 77, None),
    # A 64-hex name part followed by a size is a name, not a checksum.
    (SHA + " 9", SHA, 9, None),
])
def test_parse_upload(arg, name, size, sha):
    assert grammar.parse_upload(arg) == grammar.UploadRequest(name, size, sha)


@pytest.mark.parametrize("arg, why", [
    ("", "usage: /upload NAME SIZE [SHA256]"),
    ("a.txt", "usage: /upload NAME SIZE [SHA256]"),
    ("a.txt -5", "not '-5'"),
    ("a.txt 5.0", "not '5.0'"),
    ("a.txt 1e3", "not '1e3'"),
    ("a.txt 5K", "not '5K'"),
    ("a.txt five", "not 'five'"),
    ("a.txt \uff15", "whole number"),  # fullwidth digit five
    ("a.txt \u00b2", "whole number"),  # superscript two
    ("a.txt 5 nothex", "not 'nothex'"),
    ("a.txt 5 " + SHA[:-1], "whole number"),
])
def test_parse_upload_refuses(arg, why):
    with pytest.raises(ChatError) as e:
        grammar.parse_upload(arg)
    assert why in e.value.message


# --- sizes -------------------------------------------------------------------


@pytest.mark.parametrize("text, size", [
    ("0", 0), ("10", 10), ("10K", 10240), ("10k", 10240), ("1KB", 1024),
    ("1KiB", 1024), ("50M", 50 * 1024**2), ("2G", 2 * 1024**3), ("1T", 1024**4),
    (" 7 ", 7),
])
def test_parse_size(text, size):
    assert grammar.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "K", "abc", "-1", "1.5M", "10X", "1 0", "\uff15", "M5"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        grammar.parse_size(text)


@pytest.mark.parametrize("size, text", [
    (0, "0 bytes"), (1, "1 byte"), (2, "2 bytes"), (1023, "1023 bytes"),
    (1024, "1 KiB"), (1536, "1.5 KiB"), (2000, "2 KiB"), (50 * 1024**2, "50 MiB"),
    (3 * 1024**3, "3 GiB"), (1024**5, "1024 TiB"),
])
def test_format_size(size, text):
    assert grammar.format_size(size) == text


# --- server lines ------------------------------------------------------------


# Each server line as PROTOCOL.md writes it ("Server to client"): the
# formatter must produce exactly this text, and the parser read it back.
SERVER_LINES = [
    (grammar.chat("alice", "hi there"), "<alice> hi there",
     ServerLine("chat", "hi there", "alice")),
    (grammar.chat("alice", ""), "<alice> ", ServerLine("chat", "", "alice")),
    (grammar.action("bob", "waves hello"), "* bob waves hello",
     ServerLine("action", "waves hello", "bob")),
    (grammar.private_from("alice", "psst"), "[private] <alice> psst",
     ServerLine("private", "psst", "alice")),
    (grammar.private_to("bob", "psst"), "[private to bob] psst",
     ServerLine("private-sent", "psst", "bob")),
    (grammar.private_to("a]", "x] y"), "[private to a]] x] y",
     ServerLine("private-sent", "x] y", "a]")),
    (grammar.notice("Welcome"), "*** Welcome", ServerLine("notice", "Welcome")),
    (grammar.joined("bob"), "*** bob joined", ServerLine("notice", "bob joined")),
    (grammar.left("bob"), "*** bob left", ServerLine("notice", "bob left")),
    (grammar.left("bob", "connection lost"), "*** bob left (connection lost)",
     ServerLine("notice", "bob left (connection lost)")),
    (grammar.renamed("guest1", "bob"), "*** guest1 is now known as bob",
     ServerLine("notice", "guest1 is now known as bob")),
    (grammar.reply("online (1): bob"), "- online (1): bob",
     ServerLine("reply", "online (1): bob")),
    (grammar.reply(""), "- ", ServerLine("reply", "")),
    (grammar.error("no such user: zed"), "! no such user: zed",
     ServerLine("error", "no such user: zed")),
    (grammar.file_header(5, SHA, "my file.txt"), f"FILE 5 {SHA} my file.txt",
     ServerLine("file", "my file.txt", size=5, sha256=SHA)),
    (grammar.file_header(0, SHA, "\u65e5\u672c"), f"FILE 0 {SHA} \u65e5\u672c",
     ServerLine("file", "\u65e5\u672c", size=0, sha256=SHA)),
]


@pytest.mark.parametrize("line, text, expected", SERVER_LINES)
def test_server_lines_are_written_as_documented_and_parse_back(line, text, expected):
    assert line == text
    assert grammar.encode_line(line) == text.encode("utf-8") + b"\r\n"
    assert grammar.parse_server_line(text.encode("utf-8")) == expected
    assert grammar.parse_server_line(text.encode("utf-8") + b"\r") == expected


@pytest.mark.parametrize("raw", [b"", b"hello", b"<noclose", b"FILE x y z", b"[private]x"])
def test_parse_server_line_unknown(raw):
    assert grammar.parse_server_line(raw).kind == "unknown"


# The lines that carry user text, as PROTOCOL.md writes them.
DOCUMENTED_TEXT_LINES = [
    (grammar.chat, "chat", "<{name}> {text}"),
    (grammar.action, "action", "* {name} {text}"),
    (grammar.private_from, "private", "[private] <{name}> {text}"),
    (grammar.private_to, "private-sent", "[private to {name}] {text}"),
]

FORGERIES = [
    "*** mallory joined",
    "*** Welcome to chatd: 1 online, you are admin",
    "<admin> give me your password",
    "[private] <bob> psst",
    "[private to bob] psst",
    "- online (1): admin",
    "! no such user: you",
    f"FILE 5 {SHA} evil.sh",
    "* admin kicks you",
    "hi\r\n*** mallory is now known as admin",
    "hi\n<admin> hi",
    "\r*** overwrite",
    "\x1b[2K\x1b[1G*** fake",
    "\u2028*** fake",
    "\u202e*** fake",
    "\x85*** fake",
]


@pytest.mark.parametrize("text", FORGERIES)
def test_user_text_never_forges_another_line(text):
    """
    Whatever a user says, the server line is chat from that user (and the
    same for actions and private messages).
    """
    said = grammar.parse_client_line(text.encode("utf-8")).arg
    assert said == spec.cleaned(text)
    for fmt, kind, written in DOCUMENTED_TEXT_LINES:
        line = fmt("X", said)
        assert line == written.format(name="X", text=said)
        assert grammar.parse_server_line(wire(line)) == ServerLine(kind, said, "X")


valid_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_\-.\[\]{}|^]{0,31}", fullmatch=True).filter(
    lambda n: grammar.name_key(n) not in grammar.RESERVED_NAMES)


@settings(max_examples=300, deadline=None)
@given(name=valid_names, raw=st.binary(max_size=80) | st.text(max_size=40).map(str.encode))
def test_any_user_text_stays_chat_from_its_user(name, raw):
    assert grammar.check_name(name) == name
    command = grammar.parse_client_line(raw.replace(b"\n", b" "))
    if command is None or command.name:
        return
    for fmt, kind, written in DOCUMENTED_TEXT_LINES:
        body = wire(fmt(name, command.arg))
        assert body == written.format(name=name, text=command.arg).encode("utf-8")
        assert not any(b < 0x20 or b == 0x7F for b in body)
        assert grammar.parse_server_line(body) == ServerLine(kind, command.arg, name)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=40))
def test_valid_names_cannot_contain_line_markers(name):
    try:
        grammar.check_name(name)
    except ChatError:
        return
    assert not set(name) & set("<>*:! \t\r\n") and name.isascii() and name.isprintable()
    assert 1 <= len(name) <= 32


# --- resumable transfers (docs/PROTOCOL.md, "Resume") ---------------------------


def test_resume_lines_as_documented():
    digest = "0123456789abcdef" * 4
    assert grammar.part_header(5, 10, digest, "my file.txt") == \
        f"PART 5 10 {digest} my file.txt"
    assert grammar.resume_notice("slides.pdf", 37) == "*** resume slides.pdf from 37"
    assert grammar.resumed_from("resume my slides.pdf from 37") == ("my slides.pdf", 37)
    assert grammar.resumed_from("resume x from") is None
    line = grammar.parse_server_line(f"PART 0 10 {digest} a b".encode())
    assert (line.kind, line.offset, line.size, line.sha256, line.text) == \
        ("part", 0, 10, digest, "a b")
    # An offset past the size is no PART header.
    assert grammar.parse_server_line(f"PART 11 10 {digest} a".encode()).kind == "unknown"
    assert grammar.download_from_command(7, "a b") == "/download-from 7 a b"
    assert grammar.upload_resume_command("a b", 3, digest) == f"/upload-resume a b 3 {digest}"


@pytest.mark.parametrize("arg, expected", [
    ("0 a.txt", (0, "a.txt")),
    ("12 my 2 files.txt", (12, "my 2 files.txt")),
])
def test_parse_download_from(arg, expected):
    assert grammar.parse_download_from(arg) == expected


@pytest.mark.parametrize("arg, message", [
    ("", "usage: /download-from OFFSET NAME"),
    ("5", "usage: /download-from OFFSET NAME"),
    ("-5 a", "download offset must be a whole number of bytes, not '-5'"),
    ("５ a", "download offset must be a whole number of bytes, not '５'"),
])
def test_parse_download_from_errors(arg, message):
    with pytest.raises(ChatError) as e:
        grammar.parse_download_from(arg)
    assert e.value.message == message


def test_parse_upload_resume_needs_the_sha256():
    digest = "ab" * 32
    request = grammar.parse_upload_resume(f"my file 10 {digest.upper()}")
    assert (request.name, request.size, request.sha256) == ("my file", 10, digest)
    for arg in ("a.txt 10", "a.txt", ""):
        with pytest.raises(ChatError) as e:
            grammar.parse_upload_resume(arg)
        assert e.value.message == "usage: /upload-resume NAME SIZE SHA256"


# --- rooms and history -----------------------------------------------------


@pytest.mark.parametrize("typed, name", [
    ("#dev", "dev"), ("dev", "dev"), ("#Dev-2.x_y", "Dev-2.x_y"), ("#" + "a" * 32, "a" * 32),
    ("#0", "0"),
])
def test_check_room_accepts(typed, name):
    assert grammar.check_room(typed) == name


@pytest.mark.parametrize("typed", [
    "#", "", "##dev", "#" + "a" * 33, "#a b", "#caf\u00e9", "#a/b", "#a,b", "#<x>", "#a\ufffd",
])
def test_check_room_refuses(typed):
    with pytest.raises(ChatError, match=r"^bad room name: "):
        grammar.check_room(typed)


def test_room_key_is_case_insensitive():
    assert grammar.room_key("Dev") == grammar.room_key("DEV") == "dev"


@pytest.mark.parametrize("line, expected", [
    (grammar.in_room("dev", grammar.chat("alice", "hi")), "[#dev] <alice> hi"),
    (grammar.in_room("dev", grammar.action("alice", "waves")), "[#dev] * alice waves"),
    (grammar.room_joined("bob", "dev"), "*** bob joined #dev"),
    (grammar.room_left("bob", "dev", "lunch"), "*** bob left #dev (lunch)"),
    (grammar.room_left("bob", "dev"), "*** bob left #dev"),
    (grammar.topic_set("alice", "dev", "ship it"), "*** alice set the topic of #dev: ship it"),
    (grammar.topic("dev", "ship it"), "- topic of #dev: ship it"),
    (grammar.topic("dev", ""), "- no topic for #dev"),
    (grammar.you_are_in("dev", 3), "*** you are in #dev (3 online)"),
    (grammar.you_left("dev"), "*** you left #dev"),
    (grammar.history_line(1796133720, "<alice> hi"), "= [2026-12-01 14:02] <alice> hi"),
    (grammar.end_of_history("dev"), "- end of history of #dev"),
    (grammar.rooms_list([("lobby", 12, ""), ("dev", 3, "topic text"), ("big", 40, "")]),
     "- rooms (3): #big (40), #lobby (12), #dev (3: topic text)"),
    (grammar.who(["alice", "bob"]), "- online (2): alice, bob"),
    (grammar.who(["alice"], "Lobby"), "- online (1): alice"),
    (grammar.who(["alice", "bob"], "dev"), "- online in #dev (2): alice, bob"),
    (grammar.error(grammar.NO_ROOM), "! you are in no room (/join ROOM)"),
])
def test_room_lines(line, expected):
    assert wire(line) == expected.encode()


def test_long_topics_are_refused_and_cut_short_in_the_list():
    assert grammar.check_topic("t" * 300) == "t" * 300
    with pytest.raises(ChatError, match="topic is longer than 300 characters"):
        grammar.check_topic("t" * 301)
    assert wire(grammar.rooms_list([("dev", 1, "x" * 61)])) == \
        ("- rooms (1): #dev (1: " + "x" * 57 + "...)").encode()


def test_history_line_cleans_a_stored_line():
    assert grammar.history_line(0, "<x> \x1b[2J\r\n*** fake") == \
        f"= [1970-01-01 00:00] <x> {FFFD}[2J{FFFD}{FFFD}*** fake"


@pytest.mark.parametrize("raw, expected", [
    (b"[#dev] <alice> hi", ServerLine("chat", "hi", "alice", room="dev")),
    (b"[#dev] * alice waves", ServerLine("action", "waves", "alice", room="dev")),
    (b"[#dev] *** bob shared a.txt (5 bytes)",
     ServerLine("notice", "bob shared a.txt (5 bytes)", room="dev")),
    (b"= [2026-12-01 14:02] <alice> hi",
     ServerLine("chat", "hi", "alice", history="2026-12-01 14:02")),
    (b"= [2026-12-01 14:02] *** alice set the topic of #dev: x",
     ServerLine("notice", "alice set the topic of #dev: x", history="2026-12-01 14:02")),
    (b"[#dev] [#ops] <a> b", ServerLine("unknown", "[#ops] <a> b", room="dev")),  # once only
    (b"[#a b] <x> y", ServerLine("unknown", "[#a b] <x> y")),
    (b"= [yesterday] <x> y", ServerLine("unknown", "= [yesterday] <x> y")),
])
def test_parse_room_and_history_lines(raw, expected):
    assert grammar.parse_server_line(raw) == expected


@pytest.mark.parametrize("text, room", [
    ("you are in #dev (3 online)", "dev"),
    ("you are in no room (/join ROOM)", ""),
    ("you are in #dev", None),
    ("alice joined #dev", None),
])
def test_current_room(text, room):
    assert grammar.current_room(text) == room


@given(st.text(max_size=200))
def test_chat_text_never_forges_a_room_or_history_line(text):
    line = grammar.parse_server_line(wire(grammar.chat("alice", grammar.clean_text(text))))
    assert (line.kind, line.name, line.room, line.history) == ("chat", "alice", None, None)
