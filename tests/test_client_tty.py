"""
``chatd-client`` in a real terminal: tmux runs a shell, keys are typed with
``send-keys`` and the screen is read with ``capture-pane``, against a real
daemon with another user on a plain socket.

tmux is required, not optional: ``make test`` installs it when it is missing.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from chatd import grammar

CLIENT = str(Path(sys.executable).with_name("chatd-client"))


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Terminal:
    """
    One tmux server on its own socket, running ``bash`` in a 120x40 window.
    """

    def __init__(self, cwd):
        self.socket = f"chatd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        rc = Path(cwd) / ".bashrc-test"
        rc.write_text("PS1='$ '\n")
        env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
        env.pop("TMUX", None)
        self._tmux("-f", "/dev/null", "-u", "new-session", "-d", "-x", "120", "-y", "40",
                   "-s", "t", "-c", str(cwd), f"bash --noprofile --rcfile {rc}", env=env)

    def _tmux(self, *args, env=None):
        return subprocess.run(["tmux", "-L", self.socket, *args], env=env, check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def type(self, text):
        self._tmux("send-keys", "-t", "t", "-l", text)

    def keys(self, *keys):
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self):
        return self._tmux("capture-pane", "-p", "-J", "-t", "t")

    def wait_for(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen shows:\n{screen}")
            time.sleep(0.05)

    def kill(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)


def exit_status(screen):
    """
    What the shell's ``echo "exit=$?"`` printed after the client, or None.
    """
    for line in screen.splitlines():
        if line.startswith("exit="):
            return line[5:].strip()
    return None


def last_line(screen):
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture
def term(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: `make test` installs it "
                    "(apt-get install tmux); this test must run, not be skipped")
    t = Terminal(tmp_path)
    t.wait_for(lambda s: "$" in s)
    yield t
    t.kill()


def start_client(term, port, name):
    term.type(f"stty -g > before.txt; {CLIENT} --host 127.0.0.1 --port {port} --name {name}; "
              f"echo \"exit=$?\"; stty -g > after.txt")
    term.keys("Enter")
    term.wait_for(lambda s: last_line(s) == f"{name}>")


def test_chat_upload_download_and_quit_in_a_terminal(daemon, term, tmp_path):
    bob = daemon.client()
    bob.nick("bob")
    start_client(term, daemon.port, "tess")
    bob.expect(lambda l: l.endswith("is now known as tess"))

    # An incoming line appears above what is being typed, which stays intact.
    term.type("a line typed halfway, héllo 日本")
    term.wait_for(lambda s: last_line(s) == "tess> a line typed halfway, héllo 日本")
    bob.say("hi tess, from bob")
    screen = term.wait_for(lambda s: "<bob> hi tess, from bob" in s)
    assert last_line(screen) == "tess> a line typed halfway, héllo 日本"
    term.keys("Enter")
    assert bob.expect("<tess>") == "<tess> a line typed halfway, héllo 日本"
    screen = term.wait_for(lambda s: "<you> a line typed halfway, héllo 日本" in s)
    assert last_line(screen) == "tess>"

    # Upload a file; bob gets the same bytes.
    up = os.urandom(400_000)
    (tmp_path / "up.bin").write_bytes(up)
    term.type("/upload up.bin")
    term.keys("Enter")
    term.wait_for(lambda s: f"*** stored up.bin: {len(up)} bytes, sha256 {sha(up)}" in s)
    bob.expect(lambda l: "tess shared up.bin" in l)
    bob.say("/download up.bin")
    assert bob.line() == grammar.file_header(len(up), sha(up), "up.bin")
    assert bob.read_exact(len(up)) == up

    # Download one bob shared; an existing file of that name is kept.
    down = os.urandom(300_000) + b"\r\n"
    (tmp_path / "frombob.bin").write_bytes(b"mine")
    bob.send(f"/upload frombob.bin {len(down)} {sha(down)}\n".encode() + down)
    bob.expect("*** stored frombob.bin")
    term.wait_for(lambda s: "bob shared frombob.bin" in s)
    term.type("/download frombob.bin")
    term.keys("Enter")
    screen = term.wait_for(lambda s: "saved frombob.bin" in s)
    assert "as ./frombob (1).bin (frombob.bin already exists)" in screen
    assert (tmp_path / "frombob (1).bin").read_bytes() == down
    assert (tmp_path / "frombob.bin").read_bytes() == b"mine"
    assert last_line(screen) == "tess>"  # no progress bar left behind

    term.type("/quit")
    term.keys("Enter")
    screen = term.wait_for(exit_status)
    assert exit_status(screen) == "0"
    bob.expect("*** tess left")
    assert (tmp_path / "before.txt").read_text() == (tmp_path / "after.txt").read_text()
    # Nothing mangled: each typed line shows once, no stray escape remains.
    assert screen.count("<you> a line typed halfway, héllo 日本") == 1
    assert "\ufffd" not in screen and "[J" not in screen and "[K" not in screen


def test_ctrl_c_with_a_half_typed_line_quits_cleanly(daemon, term, tmp_path):
    bob = daemon.client()
    start_client(term, daemon.port, "cleo")
    bob.expect(lambda l: l.endswith("is now known as cleo"))
    term.type("never sent")
    term.wait_for(lambda s: last_line(s) == "cleo> never sent")
    term.keys("C-c")
    screen = term.wait_for(exit_status)
    assert exit_status(screen) == "0"
    assert bob.expect("*** cleo left") == "*** cleo left"
    assert "never sent" not in bob.buffer.decode()
    term.wait_for(lambda s: last_line(s) == "$")
    assert (tmp_path / "before.txt").read_text() == (tmp_path / "after.txt").read_text()


def test_ctrl_d_on_an_empty_line_quits_and_restores_the_terminal(daemon, term, tmp_path):
    start_client(term, daemon.port, "dora")
    term.keys("C-d")
    screen = term.wait_for(exit_status)
    assert exit_status(screen) == "0"
    term.wait_for(lambda s: last_line(s) == "$")
    assert (tmp_path / "before.txt").read_text() == (tmp_path / "after.txt").read_text()


def test_rooms_in_a_terminal(daemon, term, tmp_path):
    bob = daemon.client()
    bob.nick("bob")
    bob.say("/join #dev")
    bob.expect("*** you are in #dev")
    bob.say("said before rosa came")
    bob.say("/join #lobby")
    bob.expect("*** you are in #lobby")
    start_client(term, daemon.port, "rosa")
    bob.expect(lambda l: l.endswith("is now known as rosa"))
    term.type("/join dev")
    term.keys("Enter")
    screen = term.wait_for(lambda s: last_line(s) == "#dev rosa>")
    assert re.search(r"\[\d{4}-\d\d-\d\d \d\d:\d\d\] <bob> said before rosa came", screen)
    assert "*** you are in #dev (2 online)" in screen
    bob.say("from the lobby")
    term.wait_for(lambda s: "[#lobby] <bob> from the lobby" in s)
    term.type("/part")
    term.keys("Enter")
    term.wait_for(lambda s: last_line(s) == "#lobby rosa>")
