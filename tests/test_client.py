"""
``chatd-client``: the ``ChatClient`` protocol as a unit (``StringTransport``,
``task.Clock``, ``io.StringIO`` consoles, server bytes fed at every chunk
size), its console and line editor, and the real console script as a
subprocess against a real daemon.
"""

import hashlib
import io
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatd import grammar
from chatd.client import ChatClient
from chatd.clientapp import parse_args
from chatd.console import Console, fit_tail, format_line
from chatd.localfiles import open_upload, variants
from chatd.userinput import LineEditor, PipedLines

CLIENT = str(Path(sys.executable).with_name("chatd-client"))
CHUNKS = [1, 2, None]  # None: everything in one dataReceived
GREETING = b"*** Welcome to chatd on test: 1 online, you are guest1; files up to 50 MiB; type /help for commands\r\n"
STAMP = r"\[\d\d:\d\d\] "


def sha(data):
    return hashlib.sha256(data).hexdigest()


def chunked(data, size):
    if size is None:
        return [data]
    return [data[i:i + size] for i in range(0, len(data), size)]


class Harness:
    """
    A ``ChatClient`` on a ``StringTransport``, output in ``StringIO``s.
    """

    def __init__(self, directory, greet=True, **kw):
        self.directory = directory
        self.clock = task.Clock()
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.console = Console(self.out, self.err, self.clock.seconds)
        self.client = ChatClient(self.console, self.clock, **kw)
        self.transport = StringTransport()
        self.client.makeConnection(self.transport)
        self.ended = []
        self.client.done.addCallback(self.ended.append)
        if greet:
            self.feed(GREETING)

    def feed(self, data, size=None):
        for chunk in chunked(data, size):
            self.client.dataReceived(chunk)

    def sent(self):
        data = self.transport.value()
        self.transport.clear()
        return data

    def pump(self):
        """
        Let a ``FileSender`` (a pull producer) send everything.
        """
        while self.transport.producer is not None:
            self.transport.producer.resumeProducing()

    def lines(self):
        return [re.sub("^" + STAMP, "", line) for line in self.out.getvalue().splitlines()]

    def lose(self, reason=ConnectionDone):
        self.client.connectionLost(Failure(reason()))


@pytest.fixture
def h(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Harness(tmp_path)


def files(directory):
    return sorted(p.name for p in Path(directory).iterdir())


# --- receiving lines ------------------------------------------------------------


@pytest.mark.parametrize("size", CHUNKS)
def test_every_kind_of_server_line_is_shown_at_any_chunk_size(tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    h = Harness(tmp_path, greet=False)
    data = b"photo bytes \r\n\x00\xff"
    stream = (GREETING
              + "<zoë> héllo\r\n".encode()
              + b"* bob waves\r\n"
              + b"[private] <bob> psst\r\n"
              + b"[private to bob] hi back\r\n"
              + b"*** bob joined\r\n"
              + b"- online (2): guest1, bob\r\n"
              + b"! no such user: zed\r\n"
              + grammar.encode_line(grammar.file_header(len(data), sha(data), "p.bin"))
              + data
              + b"<bob> after the file\r\n"
              + b"something else\n")
    h.client.user_line("/download p.bin")  # sent once the greeting is in
    h.feed(stream, size)
    assert h.lines() == [
        "*** Welcome to chatd on test: 1 online, you are guest1; files up to 50 MiB; type /help for commands",
        "<zoë> héllo",
        "* bob waves",
        "[private] <bob> psst",
        "[private to bob] hi back",
        "*** bob joined",
        "- online (2): guest1, bob",
        "! no such user: zed",
        "-- saved p.bin (16 bytes, sha256 verified) as ./p.bin",
        "<bob> after the file",
        "something else",
    ]
    assert (tmp_path / "p.bin").read_bytes() == data
    assert all(re.match(STAMP, line) for line in h.out.getvalue().splitlines())


def test_control_characters_from_the_server_never_reach_the_screen(h):
    h.feed(b"<bob> \x1b[2Jboom\x07 \x9b31m\r\n")
    out = h.out.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "<bob> \ufffd[2Jboom\ufffd \ufffd31m" in out


def test_own_name_is_tracked_from_the_greeting_and_renames(h):
    names = []
    h.client.on_name = names.append
    assert h.client.name == "guest1"
    h.feed(b"*** bob is now known as robert\r\n")
    h.feed(b"*** guest1 is now known as alice\r\n")
    assert h.client.name == "alice" and names == ["alice"]


# --- sending ----------------------------------------------------------------


def test_chat_is_sent_and_echoed_as_your_own(h):
    h.client.user_line("hello all")
    h.client.user_line("//slash at the start")
    h.client.user_line("/me waves")
    h.client.user_line("   ")
    assert h.sent() == b"hello all\r\n//slash at the start\r\n/me waves\r\n"
    assert h.lines()[1:] == ["<you> hello all", "<you> /slash at the start", "* you waves"]


def test_server_commands_pass_through_as_typed(h):
    for line in ["/who", "/msg bob hi there", "/nick alice", "/files", "/frobnicate x"]:
        h.client.user_line(line)
    assert h.sent() == b"/who\r\n/msg bob hi there\r\n/nick alice\r\n/files\r\n/frobnicate x\r\n"
    assert h.lines()[1:] == []  # the server answers; no local echo


def test_help_is_answered_by_the_client(h):
    h.client.user_line("/help")
    assert h.sent() == b""
    text = "\n".join(h.lines())
    for command in ["/upload PATH", "/download NAME [DEST]", "/msg NAME TEXT", "/quit"]:
        assert command in text


def test_lines_typed_before_the_greeting_wait_for_it(tmp_path):
    h = Harness(tmp_path, greet=False, name="alice")
    assert h.sent() == b"/nick alice\r\n"
    h.client.user_line("early bird")
    assert h.sent() == b""
    h.feed(GREETING)
    assert h.sent() == b"early bird\r\n"
    assert h.lines()[0].startswith("*** Welcome") and h.lines()[1] == "<you> early bird"


# --- downloads --------------------------------------------------------------


def download(h, name, data, digest=None, size=None):
    header = grammar.file_header(len(data), digest or sha(data), name)
    h.feed(grammar.encode_line(header) + data + b"<bob> next\r\n", size)


@pytest.mark.parametrize("size", CHUNKS)
def test_download_with_a_wrong_sha256_is_deleted_and_said(h, size):
    h.client.user_line("/download x.bin")
    assert h.sent() == b"/download x.bin\r\n"
    download(h, "x.bin", b"0123456789" * 50, digest="0" * 64, size=size)
    assert files(h.directory) == []  # no file, no partial file
    assert h.client.failures == 1
    assert "sha256 mismatch for x.bin" in h.lines()[-2]
    assert h.lines()[-2].startswith("! download of x.bin failed")
    assert h.lines()[-2].endswith("partial file deleted")
    assert h.lines()[-1] == "<bob> next"  # back in line mode after exactly size bytes


def test_download_never_overwrites_an_existing_file(h):
    (h.directory / "notes.txt").write_bytes(b"mine")
    (h.directory / "notes (1).txt").write_bytes(b"also mine")
    h.client.user_line("/download notes.txt")
    download(h, "notes.txt", b"theirs")
    assert (h.directory / "notes.txt").read_bytes() == b"mine"
    assert (h.directory / "notes (1).txt").read_bytes() == b"also mine"
    assert (h.directory / "notes (2).txt").read_bytes() == b"theirs"
    assert "as ./notes (2).txt (notes.txt already exists)" in h.lines()[-2]


def test_download_into_a_directory_or_under_another_name(h):
    (h.directory / "inbox").mkdir()
    h.client.user_line("/download a.bin inbox")
    h.client.user_line('/download "b c.bin" inbox/renamed.bin')
    assert h.sent() == b"/download a.bin\r\n/download b c.bin\r\n"
    download(h, "a.bin", b"AAA")
    download(h, "b c.bin", b"BBB")
    assert (h.directory / "inbox" / "a.bin").read_bytes() == b"AAA"
    assert (h.directory / "inbox" / "renamed.bin").read_bytes() == b"BBB"


def test_download_into_a_missing_directory_is_refused_before_asking(h):
    h.client.user_line("/download a.bin nowhere/x.bin")
    assert h.sent() == b""
    assert h.lines()[-1] == "! cannot download a.bin: no such directory: nowhere"


def test_download_of_a_missing_file_forgets_its_destination(h):
    (h.directory / "inbox").mkdir()
    h.client.user_line("/download a.bin inbox")
    h.feed(b"! no such file: a.bin\r\n")
    h.client.user_line("/download a.bin")
    download(h, "a.bin", b"asked again")  # a later download goes to the default place
    assert (h.directory / "a.bin").read_bytes() == b"asked again"


@pytest.mark.parametrize("name", ["../escape.bin", "sub/dir.bin"])
def test_a_download_name_with_a_path_is_refused_and_its_bytes_skipped(h, name):
    h.client.user_line(f"/download {name}")
    download(h, name, b"evil\r\n<mallory> forged\r\n")
    assert files(h.directory) == []
    assert h.lines()[-2].startswith("! refused a download named")
    assert h.lines()[-1] == "<bob> next"


@pytest.mark.parametrize("size", CHUNKS)
def test_a_file_nobody_asked_for_is_refused_and_the_connection_closed(h, size):
    h.client.user_line("/download wanted.bin")
    download(h, "evil.sh", b"rm -rf ~\r\n<mallory> forged\r\n", size=size)
    assert files(h.directory) == []
    assert h.lines()[-1] == ("! the server sent a file nobody asked for ('evil.sh'); "
                             "closing the connection")
    assert h.transport.disconnecting
    assert not [line for line in h.lines() if "forged" in line or "next" in line]
    assert h.client.failures == 1


def test_a_download_cut_off_by_the_connection_is_deleted(h):
    h.client.user_line("/download big.bin")
    header = grammar.file_header(1000, "0" * 64, "big.bin")
    h.feed(grammar.encode_line(header) + b"x" * 400)
    h.lose(ConnectionLost)
    assert files(h.directory) == []
    assert "download of big.bin cut off after 400 of 1000 bytes; partial file deleted" in h.lines()[-1]
    assert h.ended == [False]


def test_download_progress_goes_to_stderr(h):
    h.client.user_line("/download p.bin")
    download(h, "p.bin", os.urandom(5000))
    assert "download p.bin" in h.err.getvalue()
    assert "download p.bin" not in h.out.getvalue()


# --- uploads ----------------------------------------------------------------


def test_upload_sends_header_and_exact_bytes_then_what_was_typed(h):
    data = os.urandom(300_000) + b"\r\n/quit\r\n"
    (h.directory / "photo.jpg").write_bytes(data)
    h.client.user_line("/upload photo.jpg")
    h.client.user_line("after the upload")
    header = f"/upload photo.jpg {len(data)} {sha(data)}\r\n".encode()
    h.pump()
    assert h.sent() == header + data + b"after the upload\r\n"
    assert "upload photo.jpg" in h.err.getvalue()
    assert "-- uploading photo.jpg as photo.jpg (293 KiB)" in h.lines()
    assert h.lines()[-1] == "<you> after the upload"


def test_upload_of_a_path_sends_its_base_name(h):
    (h.directory / "sub dir").mkdir()
    (h.directory / "sub dir" / "a b.txt").write_bytes(b"hello")
    h.client.user_line(f"/upload {h.directory}/sub dir/a b.txt")
    h.pump()
    assert h.sent() == f"/upload a b.txt 5 {sha(b'hello')}\r\n".encode() + b"hello"


def test_upload_of_a_missing_file_says_why_and_sends_nothing(h):
    h.client.user_line("/upload nope.bin")
    h.client.user_line("still here")
    assert h.sent() == b"still here\r\n"
    assert h.lines()[-2].startswith("! cannot read nope.bin: No such file")


def test_lines_typed_during_an_upload_wait_in_order(h):
    (h.directory / "a.bin").write_bytes(b"A" * 100_000)
    h.client.user_line("/upload a.bin")
    for i in range(1500):  # more than TransferReceiver would hold
        h.client.user_line(f"line {i}")
    h.pump()
    data = h.sent()
    tail = data.split(b"A" * 100_000, 1)[1]
    assert tail == b"".join(f"line {i}\r\n".encode() for i in range(1500))


def test_upload_source_reads_exactly_the_announced_size(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abcdef")
    source = open_upload(str(path))
    assert (source.name, source.size, source.sha256) == ("f.bin", 6, sha(b"abcdef"))
    with open(path, "ab") as f:
        f.write(b"grown")
    assert source.read(100) == b"abcdef" and source.read(100) == b""
    source.close()
    source = open_upload(str(path))
    path.write_bytes(b"ab")  # shrank: padded, so the server refuses the sha256
    assert source.read(100) == b"ab" + b"\0" * 9
    source.close()


# --- quitting ---------------------------------------------------------------


def test_quit_waits_for_the_server_to_close(h):
    h.client.user_line("/quit gone fishing")
    h.client.user_line("too late")
    assert h.sent() == b"/quit gone fishing\r\n"
    assert h.ended == []
    h.lose()
    assert h.ended == [True]


def test_quit_after_an_upload_goes_after_its_bytes(h):
    (h.directory / "a.bin").write_bytes(b"A" * 70_000)
    h.client.user_line("/upload a.bin")
    h.client.quit()
    h.pump()
    assert h.sent().endswith(b"A" * 1000 + b"/quit\r\n")


def test_quit_gives_up_on_a_silent_server(h):
    h.client.quit()
    h.clock.advance(10)
    h.feed(b"*** bye\r\n")  # data keeps it waiting
    h.clock.advance(14)
    assert not h.transport.disconnecting
    h.clock.advance(2)
    assert h.transport.disconnected  # aborted
    h.lose()
    assert h.ended == [False]
    assert "did not close the connection" in h.err.getvalue()


def test_connection_lost_without_quit_is_not_clean(h):
    h.lose(ConnectionLost)
    assert h.ended == [False]
    assert h.client.lost_reason


# --- console and input ----------------------------------------------------------


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_a_live_console_redraws_the_prompt_and_input_below_each_line():
    out = TTY()
    console = Console(out, out, lambda: 0.0, live=True, columns=lambda: 40)
    console.set_prompt("alice> ")
    console.set_input("half a sente")
    out.seek(0)
    out.truncate()
    console.show("chat", "hi", "bob")
    text = out.getvalue()
    assert text.startswith("\r\x1b[J")  # the prompt line is erased first...
    assert re.fullmatch(r"\r\x1b\[J\[\d\d:\d\d\] <bob> hi\nalice> half a sente", text)  # ...and redrawn


def test_a_long_input_shows_its_end_within_the_width():
    out = TTY()
    console = Console(out, out, lambda: 0.0, live=True, columns=lambda: 20)
    console.set_prompt("> ")
    console.set_input("x" * 50 + "END")
    assert out.getvalue().endswith("> " + "x" * 14 + "END")
    assert fit_tail("ab日本", 3) == "本" and fit_tail("ab日本", 4) == "日本"


def test_live_progress_bars_sit_in_the_footer_above_the_prompt():
    out = TTY()
    console = Console(out, out, lambda: 0.0, live=True, bars_live=True, columns=lambda: 60)
    console.set_prompt("> ")
    bar = console.progress(1000, "download x")
    bar.update(500)
    console.show("notice", "bob joined")
    text = out.getvalue()
    last = text.rsplit("bob joined\n", 1)[1]
    assert re.fullmatch(r"download x: +\d+%.*\n> ", last)
    bar.close()
    assert out.getvalue().endswith("\r\x1b[1A\x1b[J> ")


def test_colours_only_when_asked():
    assert "\x1b" not in format_line("private", "psst", "bob", 0.0, color=False)
    coloured = format_line("private", "psst", "bob", 0.0, color=True)
    assert "\x1b[35m" in coloured and re.sub(r"\x1b\[[\d;]*m", "", coloured).endswith(
        "[private] <bob> psst")


def test_room_and_history_lines_are_shown_with_their_room_and_dimmed(h):
    rooms = []
    h.client.on_room = rooms.append
    h.feed(b"= [2026-12-01 14:02] <alice> earlier\r\n"
           b"- end of history of #dev\r\n"
           b"*** you are in #dev (2 online)\r\n"
           b"[#lobby] <bob> meanwhile\r\n"
           b"[#lobby] *** bob shared a.txt (5 bytes)\r\n"
           b"*** you left #dev\r\n"
           b"*** you are in no room (/join ROOM)\r\n")
    assert h.lines()[1:] == [
        "[2026-12-01 14:02] <alice> earlier",  # its own time stamp
        "- end of history of #dev",
        "*** you are in #dev (2 online)",
        "[#lobby] <bob> meanwhile",
        "[#lobby] *** bob shared a.txt (5 bytes)",
        "*** you left #dev",
        "*** you are in no room (/join ROOM)",
    ]
    assert rooms == ["dev", ""] and h.client.room == ""
    dimmed = format_line("chat", "earlier", "alice", 0.0, color=True, history="2026-12-01 14:02")
    assert dimmed.startswith("\x1b[2m[2026-12-01 14:02] <alice> earlier")
    assert format_line("action", "waves", "alice", 0.0, room="dev").endswith(
        "[#dev] * alice waves")


def test_a_replayed_or_other_rooms_notice_never_changes_the_room_or_name(h):
    h.client.on_room = rooms = []
    h.client.on_room = rooms.append
    h.feed(b"= [2026-12-01 14:02] *** you are in #fake (1 online)\r\n"
           b"[#x] *** guest1 is now known as mallory\r\n")
    assert rooms == [] and h.client.name == "guest1"


def test_line_editor_keys():
    lines, ends, console = [], [], Console(io.StringIO(), io.StringIO())
    editor = LineEditor(console, lines.append, lambda: ends.append(True))
    for key in [b"hel", b"lx\x7f", b"o \xc3", b"\xa9t\xc3\xa9\r"]:  # é split across reads
        editor.dataReceived(key)
    editor.dataReceived(b"one two\x17three\n")
    editor.dataReceived(b"junk\x15\x1b[Ax\x1b[D\r")  # Ctrl-U, Up (history), Left ignored
    editor.dataReceived(b"\x1b[A\x1b[A\x1b[B\r")
    assert lines == ["hello été", "one three", "one threex", "one threex"]
    editor.dataReceived(b"abc\x04")  # Ctrl-D with text: ignored
    assert ends == []
    editor.dataReceived(b"\x15\x04")
    assert ends == [True]


def test_piped_lines_include_a_last_line_without_newline():
    lines, ends = [], []
    reader = PipedLines(lines.append, lambda: ends.append(True))
    reader.makeConnection(StringTransport())
    reader.dataReceived(b"one\r\ntw")
    reader.dataReceived(b"o\nthree")
    reader.readConnectionLost()
    assert lines == ["one", "two", "three"] and ends == [True]


def test_name_variants():
    assert list(variants("a.tar.gz"))[:3] == ["a.tar.gz", "a.tar (1).gz", "a.tar (2).gz"]
    assert list(variants(".bashrc"))[1] == ".bashrc (1)"


def test_bad_command_line_options_are_usage_errors(capsys):
    for argv in (["--port", "x"], ["--port", "70000"], ["--name", "admin"], ["--name", "a b"]):
        with pytest.raises(SystemExit) as e:
            parse_args(argv)
        assert e.value.code == 2
    assert parse_args([]).port == 5002 and parse_args([]).host == "localhost"


# --- the console script against a real daemon ----------------------------------


class Script:
    """
    ``chatd-client`` as a subprocess with piped stdin; stdout read by a
    thread so a test can wait for a line.
    """

    def __init__(self, port, *args, cwd):
        self.proc = subprocess.Popen(
            [CLIENT, "--host", "127.0.0.1", "--port", str(port), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        self.lines = queue.Queue()
        self.seen = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_for(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if text in line:
                    return line
            try:
                self.seen.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{text!r} not seen; got {self.seen}")

    def end(self, timeout=20):
        self.proc.stdin.close()
        code = self.proc.wait(timeout)
        err = self.proc.stderr.read().decode("utf-8", "replace")
        self.reader.join(5)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def scripts():
    started = []

    def start(*args, **kw):
        s = Script(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def test_piped_client_chats_with_another_user(daemon, scripts, tmp_path):
    bob = daemon.client()
    bob.nick("bob")
    alice = scripts(daemon.port, "--name", "alice", cwd=tmp_path)
    alice.wait_for("you are guest")
    bob.expect(lambda l: l.endswith("is now known as alice"))
    alice.type("hello bob")
    alice.type("/msg bob just for you")
    assert bob.expect("<alice>") == "<alice> hello bob"
    assert bob.expect("[private]") == "[private] <alice> just for you"
    bob.say("hi alice")
    assert re.fullmatch(STAMP + "<bob> hi alice", alice.wait_for("<bob> hi alice"))
    code, err = alice.end()
    assert code == 0, err
    bob.expect("*** alice left")
    alice.wait_for("<you> hello bob")
    alice.wait_for("[private to bob] just for you")
    alice.wait_for("*** bye")


def test_piped_upload_and_download_round_trip_a_binary_file(daemon, tmp_path):
    data = os.urandom(700_000) + b"\r\n\x00/quit\r\n" + bytes(range(256))
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "in" / "blob.bin").write_bytes(data)
    script = "/upload in/blob.bin\n/files\n/download blob.bin out\nbye now\n"
    result = subprocess.run([CLIENT, "--host", "127.0.0.1", "--port", str(daemon.port)],
                            input=script.encode(), capture_output=True, cwd=tmp_path, timeout=30)
    out = result.stdout.decode()
    assert result.returncode == 0, (out, result.stderr)
    assert (tmp_path / "out" / "blob.bin").read_bytes() == data
    assert f"*** stored blob.bin: {len(data)} bytes, sha256 {sha(data)}" in out
    assert "saved blob.bin (683.9 KiB, sha256 verified) as out/blob.bin" in out
    assert out.index("*** stored") < out.index("- blob.bin:") < out.index("saved blob.bin")
    assert "upload blob.bin" in result.stderr.decode()  # progress on stderr
    # And another user gets the same bytes.
    bob = daemon.client()
    bob.expect("- end of history of #lobby")  # the upload's notice, replayed
    bob.say("/download blob.bin")
    assert bob.line() == f"FILE {len(data)} {sha(data)} blob.bin"
    assert bob.read_exact(len(data)) == data


def test_python_dash_m_runs_the_client(daemon, tmp_path):
    result = subprocess.run([sys.executable, "-m", "chatd.client", "--host", "127.0.0.1",
                             "--port", str(daemon.port)], input=b"/who\n",
                            capture_output=True, cwd=tmp_path, timeout=20)
    assert result.returncode == 0, result.stderr
    assert "- online (" in result.stdout.decode()


def test_connection_lost_is_said_on_stderr_with_a_non_zero_exit(make_daemon, scripts, tmp_path):
    d = make_daemon()
    alice = scripts(d.port, cwd=tmp_path)
    alice.wait_for("Welcome")
    d.kill9()
    code = alice.proc.wait(10)
    err = alice.proc.stderr.read().decode()
    assert code == 1
    assert re.search(rf"! connection to 127\.0\.0\.1:{d.port} lost", err), err


def test_nothing_listening_is_a_clear_error(tmp_path):
    from daemon import free_port

    port = free_port()
    result = subprocess.run([CLIENT, "--host", "127.0.0.1", "--port", str(port)],
                            input=b"hello\n", capture_output=True, cwd=tmp_path, timeout=20)
    assert result.returncode == 1
    assert f"could not connect to 127.0.0.1:{port}" in result.stderr.decode()
    assert result.stdout == b""


def test_a_hostile_server_cannot_make_the_client_save_a_file(tmp_path):
    """
    A server that sends a ``FILE`` section nobody asked for: the real client
    writes nothing, says so, and closes the connection.
    """
    import socket

    data = b"#!/bin/sh\necho owned\n"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.sendall(GREETING + grammar.encode_line(
                grammar.file_header(len(data), sha(data), "evil.sh")) + data
                + b"<mallory> forged\r\n")
            conn.settimeout(20)
            while True:  # until the client closes
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received.append(chunk)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        client = Script(port, cwd=tmp_path)  # stdin stays open: it never quits
        code = client.proc.wait(20)
        err = client.proc.stderr.read().decode()
        client.reader.join(5)
        server.join(20)
        assert not server.is_alive(), "the client did not close the connection"
    finally:
        listener.close()
        client.kill()
    out = []
    while not client.lines.empty():
        out.append(client.lines.get())
    assert code == 1, (out, err)
    assert os.listdir(tmp_path) == []
    assert [line for line in out if "nobody asked" in line][0].endswith(
        "! the server sent a file nobody asked for ('evil.sh'); closing the connection")
    assert not [line for line in out if "forged" in line], out


# --- resuming (issue 17) --------------------------------------------------------


def test_a_cut_off_download_is_kept_and_resumed_by_the_next_connection(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = os.urandom(100_000)
    first = Harness(tmp_path, keep_partials=True)
    first.client.user_line("/download d.bin")
    assert first.sent() == b"/download d.bin\r\n"
    first.feed(grammar.encode_line(grammar.file_header(len(data), sha(data), "d.bin"))
               + data[:40_000])
    first.lose(ConnectionLost)
    assert files(tmp_path) == [".chatd-d.bin.part"]
    assert first.lines()[-1] == "-- download of d.bin cut off after 40000 of 100000 bytes; kept to resume"
    assert first.client.failures == 0
    second = Harness(tmp_path, greet=False, keep_partials=True, resume=first.client.unfinished)
    second.feed(GREETING)
    assert second.sent() == b"/download-from 40000 d.bin\r\n"
    assert "-- resuming d.bin from 39.1 KiB" in second.lines()
    second.feed(grammar.encode_line(grammar.part_header(40_000, len(data), sha(data), "d.bin"))
                + data[40_000:] + b"<bob> next\r\n")
    assert (tmp_path / "d.bin").read_bytes() == data
    assert files(tmp_path) == ["d.bin"]
    assert second.lines()[-2] == "-- saved d.bin (97.7 KiB, sha256 verified) as ./d.bin"
    assert second.lines()[-1] == "<bob> next"


def test_a_download_whose_kept_part_is_there_resumes_and_checks_the_whole_file(h):
    data = os.urandom(5000)
    (h.directory / ".chatd-k.bin.part").write_bytes(b"X" + data[1:2000])  # one wrong byte
    h.client.user_line("/download k.bin")
    assert h.sent() == b"/download-from 2000 k.bin\r\n"
    h.feed(grammar.encode_line(grammar.part_header(2000, len(data), sha(data), "k.bin"))
           + data[2000:])
    assert files(h.directory) == []  # the sha256 covers the kept part too: deleted
    assert "sha256 mismatch for k.bin" in h.lines()[-1]


def test_a_kept_part_longer_than_the_file_starts_over(h):
    (h.directory / ".chatd-s.bin.part").write_bytes(b"x" * 50)
    h.client.user_line("/download s.bin")
    assert h.sent() == b"/download-from 50 s.bin\r\n"
    h.feed(b"! offset 50 is past the end of s.bin (10 bytes)\r\n")
    assert h.sent() == b"/download s.bin\r\n"
    download(h, "s.bin", b"0123456789")
    assert (h.directory / "s.bin").read_bytes() == b"0123456789"


def test_a_part_at_another_offset_than_asked_is_refused(h):
    h.client.user_line("/download p.bin")
    h.feed(grammar.encode_line(grammar.part_header(3, 10, "0" * 64, "p.bin")) + b"3456789")
    assert files(h.directory) == []
    assert h.transport.disconnecting


def test_a_cut_off_upload_is_resumed_from_where_the_server_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = os.urandom(300_000)
    (tmp_path / "u.bin").write_bytes(data)
    first = Harness(tmp_path, keep_partials=True)
    first.client.user_line("/upload u.bin")
    first.transport.producer.resumeProducing()  # one chunk out, then the line drops
    first.lose(ConnectionLost)
    assert first.client.unfinished == [("upload", "u.bin")]
    second = Harness(tmp_path, greet=False, keep_partials=True, resume=first.client.unfinished)
    second.feed(GREETING)
    assert second.sent() == f"/upload-resume u.bin {len(data)} {sha(data)}\r\n".encode()
    second.client.user_line("typed meanwhile")
    assert second.sent() == b""  # waits behind the upload
    second.feed(b"*** resume u.bin from 123456\r\n")
    second.pump()
    assert second.sent() == data[123456:] + b"typed meanwhile\r\n"
    assert "-- resuming u.bin from 120.6 KiB" in second.lines()


def test_a_refused_resume_is_said_and_typing_goes_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "u.bin").write_bytes(b"abc")
    h = Harness(tmp_path, greet=False, keep_partials=True, resume=[("upload", "u.bin")])
    h.feed(GREETING)
    h.sent()
    h.client.user_line("after")
    h.feed(b"! u.bin is being resumed by another connection; try again later\r\n")
    assert h.sent() == b"after\r\n"
    assert h.client.failures == 1


def _resume_script(proxy, tmp_path, script):
    client = Script(proxy.port, "--reconnect", cwd=tmp_path)
    for line in script:
        client.type(line)
    return client


def test_reconnect_resumes_an_upload_over_a_cut_connection(daemon, tmp_path, scripts):
    from cutproxy import CutProxy

    data = os.urandom(6 * 2**20)
    (tmp_path / "slides.pdf").write_bytes(data)
    proxy = CutProxy(daemon.port, upstream=2 * 2**20 + 12345)
    try:
        client = scripts(proxy.port, "--reconnect", cwd=tmp_path)
        client.type("/upload slides.pdf")
        resumed = client.wait_for("-- resuming slides.pdf from", timeout=20)
        client.wait_for(f"*** stored slides.pdf: {len(data)} bytes, sha256 {sha(data)}", timeout=20)
        assert proxy.cut.is_set() and proxy.connections == 2
        offset = float(resumed.rsplit(" from ", 1)[1].split()[0])
        assert 1.0 < offset <= 2.1, resumed  # MiB the server had kept
        code, err = client.end()
        assert code == 0, err
    finally:
        proxy.close()
    bob = daemon.client()
    bob.say("/download slides.pdf")
    assert bob.answer() == grammar.file_header(len(data), sha(data), "slides.pdf")
    assert bob.read_exact(len(data), timeout=20) == data


def test_reconnect_resumes_a_download_over_a_cut_connection(daemon, tmp_path, scripts):
    from cutproxy import CutProxy

    data = os.urandom(6 * 2**20)
    alice = daemon.client()
    alice.send(f"/upload big.bin {len(data)}\n".encode() + data)
    assert alice.expect("*** stored big.bin")
    (tmp_path / "out").mkdir()
    proxy = CutProxy(daemon.port, downstream=3 * 2**20)
    try:
        client = scripts(proxy.port, "--reconnect", cwd=tmp_path)
        client.type("/download big.bin out")
        client.wait_for("-- resuming big.bin from", timeout=20)
        client.wait_for("saved big.bin (6 MiB, sha256 verified) as out/big.bin", timeout=20)
        assert proxy.cut.is_set() and proxy.connections == 2
        code, err = client.end()
        assert code == 0, err
    finally:
        proxy.close()
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert os.listdir(tmp_path / "out") == ["big.bin"]
