"""
chatd without ``termios``, ``tty`` and ``fcntl``, as on Windows: the
``tests/noposix`` sitecustomize (on ``PYTHONPATH``) makes them unimportable
from chatd's code.  Every chatd module imports; a daemon runs; and
``chatd-client`` chats, uploads, downloads and quits, with piped stdin and
in a terminal (tmux), through its line-by-line input thread.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatd import grammar
from daemon import ROOT, Daemon
from tmux import exit_status, interrupt_half_typed, last_line, upload_from_terminal

CLIENT = str(Path(sys.executable).with_name("chatd-client"))
NOPOSIX = ROOT / "tests" / "noposix"
FALLBACK = "chatd.terminal.posix fcntl"  # chatd.terminal tried it, was refused


def sha(data):
    return hashlib.sha256(data).hexdigest()


def noposix_env(log):
    """
    The environment of a process run under the block; refusals go to ``log``.
    """
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NOPOSIX), path])),
                CHATD_BLOCK_LOG=str(log), LANG="C.UTF-8", LC_ALL="C.UTF-8")


@pytest.fixture
def daemon(tmp_path):
    """
    A chat daemon itself run under the block (none of its imports may need
    the blocked modules: a refusal is logged and it would fail to start).
    """
    log = tmp_path / "daemon-blocked.log"
    d = Daemon(tmp_path / "data", env=noposix_env(log)).start()
    yield d
    d.stop()
    assert not log.exists(), log.read_text()


def test_every_chatd_module_imports_without_them(tmp_path):
    log = tmp_path / "blocked.log"
    code = """
import importlib, pkgutil, sys
import chatd
names = [m.name for m in pkgutil.walk_packages(chatd.__path__, "chatd.")]
names += ["twisted.plugins.chatd_plugin"]
for name in names:
    if name == "chatd.terminal.posix":  # the POSIX side of the boundary
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        raise AssertionError("terminal.posix imported: the block did not work")
    importlib.import_module(name)
import chatd.terminal
assert chatd.terminal.TerminalMode.__module__ == "chatd.terminal.windows"
assert not chatd.terminal.TerminalMode.key_by_key
print(len(names))
"""
    done = subprocess.run([sys.executable, "-c", code], env=noposix_env(log), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 20
    # terminal.posix is imported (and refused) on purpose; nothing else is.
    refusals = set(log.read_text().splitlines())
    assert refusals == {FALLBACK}, refusals


def test_the_block_refuses_even_a_loaded_module(tmp_path):
    """
    The block can fail: fcntl, loaded by Twisted already, is still refused
    to chatd.terminal.posix (and so to chatd).
    """
    log = tmp_path / "blocked.log"
    code = ("import fcntl, twisted.internet.fdesc\n"
            "try:\n    import chatd.terminal.posix\nexcept ImportError as e:\n"
            "    print('refused:', e.name)\n")
    done = subprocess.run([sys.executable, "-c", code], env=noposix_env(log), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "refused: fcntl", done.stderr
    assert set(log.read_text().splitlines()) == {FALLBACK}  # the package tried it first


def test_piped_client_chats_uploads_downloads_and_quits(daemon, tmp_path):
    bob = daemon.client()
    bob.nick("bob")
    down = os.urandom(300_000) + b"\r\n"
    bob.send(f"/upload frombob.bin {len(down)} {sha(down)}\n".encode() + down)
    bob.expect("*** stored frombob.bin")
    up = os.urandom(400_000) + "é\n".encode()
    (tmp_path / "up.bin").write_bytes(up)
    log = tmp_path / "client-blocked.log"
    script = "hello bob, héllo\n/upload up.bin\n/download frombob.bin\n/quit\n"
    done = subprocess.run([CLIENT, "--host", "127.0.0.1", "--port", str(daemon.port),
                           "--name", "wanda"], input=script.encode(), capture_output=True,
                          cwd=tmp_path, env=noposix_env(log), timeout=30)
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr)
    assert log.read_text() == FALLBACK + "\n"  # the input thread, not Twisted's stdio
    assert bob.expect("<wanda>") == "<wanda> hello bob, héllo"
    bob.expect(lambda line: "wanda shared up.bin" in line)
    assert (tmp_path / "frombob.bin").read_bytes() == down
    assert "saved frombob.bin" in out and "*** bye" in out
    bob.expect("*** wanda left")
    bob.say("/download up.bin")
    assert bob.line() == grammar.file_header(len(up), sha(up), "up.bin")
    assert bob.read_exact(len(up)) == up


def start_client(term, port, name, log):
    env = " ".join(f"{key}='{value}'" for key, value in noposix_env(log).items()
                   if key in ("PYTHONPATH", "CHATD_BLOCK_LOG"))
    term.type(f"stty -g > before.txt; env {env} {CLIENT} --host 127.0.0.1 --port {port} "
              f"--name {name}; echo \"exit=$?\"; stty -g > after.txt")
    term.keys("Enter")
    term.wait_for(lambda s: "you are guest" in s)


def test_client_in_a_terminal_chats_uploads_downloads_and_quits(
        daemon, term, tmp_path):
    bob = daemon.client()
    bob.nick("bob")
    log = tmp_path / "client-blocked.log"
    start_client(term, daemon.port, "tess", log)
    bob.expect(lambda line: line.endswith("is now known as tess"))

    # Lines, as the console's own line editing gives them.
    term.type("hello from a plain console, héllo 日本")
    term.keys("Enter")
    assert bob.expect("<tess>") == "<tess> hello from a plain console, héllo 日本"
    term.wait_for(lambda s: "<you> hello from a plain console, héllo 日本" in s)
    bob.say("hi tess, from bob")
    term.wait_for(lambda s: "<bob> hi tess, from bob" in s)

    upload_from_terminal(term, bob, tmp_path, "tess")

    down = os.urandom(300_000)
    bob.send(f"/upload frombob.bin {len(down)} {sha(down)}\n".encode() + down)
    term.wait_for(lambda s: "bob shared frombob.bin" in s)
    term.type("/download frombob.bin")
    term.keys("Enter")
    term.wait_for(lambda s: "saved frombob.bin" in s)
    assert (tmp_path / "frombob.bin").read_bytes() == down

    term.type("/quit")
    term.keys("Enter")
    screen = term.wait_for(exit_status)
    assert exit_status(screen) == "0"
    bob.expect("*** tess left")
    term.wait_for(lambda s: last_line(s) == "$")
    assert (tmp_path / "before.txt").read_text() == (tmp_path / "after.txt").read_text()
    assert log.read_text() == FALLBACK + "\n"
    assert "\ufffd" not in screen


def test_ctrl_c_and_end_of_input_in_a_terminal(daemon, term, tmp_path):
    bob = daemon.client()
    log = tmp_path / "client-blocked.log"
    start_client(term, daemon.port, "cleo", log)
    bob.expect(lambda line: line.endswith("is now known as cleo"))
    interrupt_half_typed(term, bob, "cleo")
    term.keys("C-l")  # a clean screen for the second run
    term.wait_for(lambda s: exit_status(s) is None)
    start_client(term, daemon.port, "dora", log)
    bob.expect(lambda line: line.endswith("is now known as dora"))
    term.keys("C-d")  # on an empty line: end of input
    screen = term.wait_for(exit_status)
    assert exit_status(screen) == "0"
    bob.expect("*** dora left")
