"""
A real terminal for tests: tmux runs a shell, keys are typed with
``send-keys`` and the screen is read with ``capture-pane``.  tmux is
required, not optional: ``make test`` installs it when it is missing.
"""

import os
import subprocess
import time
import uuid
from pathlib import Path

from chatd import grammar
from loopback import sha


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


def upload_from_terminal(term, other, directory, name):
    """
    ``name`` (as the server calls the client's user) types ``/upload`` of a
    new 400 kB file in ``directory``; ``other`` (a socket client) downloads
    the same bytes.
    """
    up = os.urandom(400_000)
    (Path(directory) / "up.bin").write_bytes(up)
    term.type("/upload up.bin")
    term.keys("Enter")
    term.wait_for(lambda s: f"*** stored up.bin: {len(up)} bytes, sha256 {sha(up)}" in s)
    other.expect(lambda line: f"{name} shared up.bin" in line)
    other.say("/download up.bin")
    assert other.line() == grammar.file_header(len(up), sha(up), "up.bin")
    assert other.read_exact(len(up)) == up


def interrupt_half_typed(term, other, name):
    """
    Type a line without Enter, then Ctrl-C: the client exits 0, ``other``
    (a socket client) sees ``name`` leave and never gets the line, and the
    shell's prompt is back.
    """
    term.type("never sent")
    term.wait_for(lambda s: last_line(s).endswith("never sent"))
    term.keys("C-c")
    screen = term.wait_for(exit_status)
    assert exit_status(screen) == "0"
    # Every line up to the departure, kept (``expect`` would consume them).
    seen = other.lines_until(f"*** {name} left")
    assert seen[-1] == f"*** {name} left"
    assert not [line for line in seen if "never sent" in line], seen
    term.wait_for(lambda s: last_line(s) == "$")
