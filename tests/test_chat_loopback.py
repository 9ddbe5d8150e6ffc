"""
Chat against a real ``twistd -n chatd`` on a loopback port, with raw
sockets as ``nc`` users: three clients, privacy, renames, presence, guests,
line endings, split UTF-8, control bytes, fragments without a newline.
"""

import socket
import time

from chatd import grammar
from loopback import lines_until_closed, reset, users

FFFD = "\ufffd"


def test_greeting(daemon):
    c = daemon.client(greet=False)
    greeting = c.line()
    assert greeting.startswith("*** Welcome to chatd on ")
    assert greeting.endswith("; files up to 50 MiB; type /help for commands")
    assert " online, you are guest" in greeting


def test_three_clients_chat(daemon):
    alice, bob, carol = users(daemon, "alice", "bob", "carol")
    alice.say("hello all")
    assert bob.line() == "<alice> hello all"
    assert carol.line() == "<alice> hello all"
    bob.say("hi alice")
    assert alice.line() == "<bob> hi alice"
    assert carol.line() == "<bob> hi alice"
    carol.say("/me waves")
    assert alice.line() == "* carol waves"
    assert bob.line() == "* carol waves"
    carol.say("//slash first")
    assert alice.line() == "<carol> /slash first"
    assert bob.line() == "<carol> /slash first"
    for c in (alice, bob, carol):
        c.nothing(0.2)  # nobody hears an echo of their own lines


def test_private_message_privacy(daemon):
    alice, bob, carol = users(daemon, "alice", "bob", "carol")
    alice.say("/msg BOB psst, the key is 42")
    assert alice.line() == "[private to bob] psst, the key is 42"
    assert bob.line() == "[private] <alice> psst, the key is 42"
    alice.say("/msg zed hello?")
    assert alice.line() == "! no such user: zed"
    carol.say("sync")
    assert alice.line() == "<carol> sync"
    assert bob.line() == "<carol> sync"
    carol.nothing(0.2)
    assert "the key is 42" not in daemon.log()


def test_rename_seen_by_all(daemon):
    alice, bob, carol = users(daemon, "alice", "bob", "carol")
    alice.say("/nick alicia")
    for c in (alice, bob, carol):
        assert c.line() == "*** alice is now known as alicia"
    alice.say("new name")
    assert bob.line() == "<alicia> new name"
    assert carol.line() == "<alicia> new name"
    bob.say("/nick ALICIA")
    assert bob.line() == "! name is taken: ALICIA"
    bob.say("/nick Admin")
    assert bob.line() == "! name is reserved: Admin"
    bob.say("/nick <alicia>")
    assert bob.line().startswith("! name may only use letters")
    bob.say("/nick alice")  # free again
    for c in (alice, bob, carol):
        assert c.line() == "*** bob is now known as alice"
    carol.say("/who")
    assert carol.line() == "- online (3): alicia, alice, carol"


def test_presence_join_and_socket_drop(daemon):
    alice, bob = users(daemon, "alice", "bob")
    carol = daemon.client()
    assert alice.line() == f"*** {carol.name} joined"
    assert bob.line() == f"*** {carol.name} joined"
    carol.close()
    assert alice.line() == f"*** {carol.name} left (connection lost)"
    assert bob.line() == f"*** {carol.name} left (connection lost)"
    dave = daemon.client()
    assert alice.line() == f"*** {dave.name} joined"
    reset(dave)  # a crash: RST, no FIN
    assert alice.line() == f"*** {dave.name} left (connection lost)"
    assert bob.expect("*** " + dave.name + " left") == f"*** {dave.name} left (connection lost)"
    alice.say("/who")
    assert alice.line() == "- online (2): alice, bob"


def test_guest_chat_without_nick(daemon):
    guest, bob = users(daemon, None, "bob")
    assert guest.name.startswith("guest") and guest.name[5:].isdigit()
    guest.say("hi, no nick needed")
    assert bob.line() == f"<{guest.name}> hi, no nick needed"


def test_crlf_and_lf(daemon):
    alice, bob = users(daemon, "alice", "bob")
    alice.send(b"crlf line\r\nlf line\nand\r\n")
    assert bob.line() == "<alice> crlf line"
    assert bob.line() == "<alice> lf line"
    assert bob.line() == "<alice> and"
    alice.send(b"/who\r\n")
    assert alice.raw_line() == b"- online (2): alice, bob"
    assert alice.buffer == b""  # every line ends with exactly CRLF


def test_split_utf8_over_several_sends(daemon):
    alice, bob = users(daemon, "alice", "bob")
    for piece in (b"caf\xc3", b"\xa9 \xe2\x82", b"\xac \xf0\x9f", b"\x8e\x89\n"):
        alice.send(piece)
        time.sleep(0.05)
    assert bob.line() == "<alice> caf\u00e9 \u20ac \U0001f389"


def test_control_bytes_and_invalid_utf8_are_cleaned(daemon):
    alice, bob = users(daemon, "alice", "bob")
    alice.send(b"\x1b[2J\x1b[31mred\x07 c1\x9b \xc2\x9b del\x7f nul\x00 "
               b"rtl\xe2\x80\xae ls\xe2\x80\xa8 bad\xff\xfe end\n")
    raw = bob.raw_line()
    assert not [b for b in raw if b < 0x20 or b == 0x7F], raw
    assert raw.decode("utf-8") == (
        f"<alice> {FFFD}[2J{FFFD}[31mred{FFFD} c1{FFFD} {FFFD} del{FFFD} nul{FFFD} "
        f"rtl{FFFD} ls{FFFD} bad{FFFD}{FFFD} end")


def test_fragment_without_newline(daemon):
    alice, bob = users(daemon, "alice", "bob")
    start = time.monotonic()
    alice.send("one send, no newline")
    assert bob.line(timeout=3) == "<alice> one send, no newline"
    waited = time.monotonic() - start
    assert 0.4 <= waited < 2.0, waited
    # The idle fragment is a line of its own: the next one starts afresh.
    alice.send("first")
    assert bob.line(timeout=3) == "<alice> first"
    alice.send("second")
    assert bob.line(timeout=3) == "<alice> second"


def test_fragment_command_without_newline(daemon):
    [alice] = users(daemon, "alice")
    alice.send("/who")
    assert alice.line(timeout=3) == "- online (1): alice"


def test_quit_with_reason(daemon):
    alice, bob, carol = users(daemon, "alice", "bob", "carol")
    alice.say("/quit gotta go")
    assert lines_until_closed(alice) == ["*** bye"]
    assert bob.line() == "*** alice left (gotta go)"
    assert carol.line() == "*** alice left (gotta go)"
    bob.say("/quit")
    assert lines_until_closed(bob) == ["*** bye"]
    assert carol.line() == "*** bob left"
    carol.say("/who")
    assert carol.line() == "- online (1): carol"


def test_half_close_gets_every_answer(daemon):
    """
    ``printf 'hi\\n/who\\nbye' | nc -N``: everything sent before EOF is
    handled, the unterminated last line included, then the server closes.
    """
    [bob] = users(daemon, "bob")
    c = daemon.client()
    assert bob.line() == f"*** {c.name} joined"
    c.send(b"hi\n/who\nbye")
    c.sock.shutdown(socket.SHUT_WR)
    lines = lines_until_closed(c)
    assert lines == [f"- online (2): bob, {c.name}"]
    assert bob.line() == f"<{c.name}> hi"
    assert bob.line() == f"<{c.name}> bye"  # the unterminated last line, at EOF
    assert bob.line() == f"*** {c.name} left (connection lost)"


def test_commands_help_and_errors(daemon):
    [alice] = users(daemon, "alice")
    alice.say("/help")
    first = alice.line()
    assert first == "- commands:"
    alice.say("/who")  # its answer ends the list
    help_lines = []
    while not (line := alice.line()).startswith("- online ("):
        help_lines.append(line)
    assert all(line.startswith("- ") for line in help_lines)
    for command in ("/nick", "/msg", "/me", "/who", "/join", "/part", "/rooms",
                    "/topic", "/history", "/files", "/upload", "/upload-resume",
                    "/download", "/download-from", "/help", "/quit"):
        assert any(line.startswith(f"- {command} ") for line in help_lines), command
    assert any("(up to 50 MiB)" in line for line in help_lines)
    alice.say("/frobnicate now")
    assert alice.line() == "! unknown command: /frobnicate (try /help)"
    alice.say("/me")
    assert alice.line() == "! usage: /me ACTION"
    alice.say("/msg bob")
    assert alice.line() == "! usage: /msg NAME TEXT"


def raw_lines_until(client, prefix):
    lines = []
    while not (lines and lines[-1].startswith(prefix)):
        lines.append(client.raw_line())
    return lines


def test_server_sends_only_clean_crlf_lines(daemon):
    alice, bob = users(daemon, "alice", "bob")
    hostile = [
        b"\x1b]0;pwned\x07", b"\r*** fake\r", b"\x00\x01\x02\x03", b"\xe2\x80\xa8\xe2\x80\xa9",
        b"/nick \x1b[31mred", b"/msg bob \x1b[5mblink", b"/me \x9b2J", b"/upload \x1b 1\n!",
        b"/frob\x1b[0m", b"\xc0\xaf\xed\xa0\x80", b"/msg \x1b bob",
    ]
    alice.send(b"\n".join(hostile) + b"\n/who\n")
    seen = raw_lines_until(alice, b"- online (")
    bob.say("/who")
    seen += raw_lines_until(bob, b"- online (")
    assert len(seen) >= 12
    for raw in seen:
        assert not [b for b in raw if b < 0x20 or b == 0x7F], raw
        assert grammar.parse_server_line(raw).kind != "unknown", raw
    chat = [grammar.parse_server_line(raw) for raw in seen
            if grammar.parse_server_line(raw).kind in ("chat", "action", "private")]
    assert len(chat) == 7 and all(line.name == "alice" for line in chat)
