"""
``chatd-client`` in a real terminal: tmux runs a shell, keys are typed with
``send-keys`` and the screen is read with ``capture-pane`` (tests/tmux.py,
the ``term`` fixture), against a real daemon with another user on a plain
socket.
"""

import hashlib
import os
import re
import sys
from pathlib import Path

from tmux import exit_status, interrupt_half_typed, last_line, upload_from_terminal

CLIENT = str(Path(sys.executable).with_name("chatd-client"))


def sha(data):
    return hashlib.sha256(data).hexdigest()


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
    upload_from_terminal(term, bob, tmp_path, "tess")

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
    interrupt_half_typed(term, bob, "cleo")  # shown as "cleo> never sent"
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
