"""
Resumable transfers against a real daemon: ``/download-from OFFSET NAME``
(``PART OFFSET SIZE SHA256 NAME``), and ``/upload-resume NAME SIZE SHA256``
(``*** resume NAME from K``) after an upload was cut off.
"""

import os
import random
import re
import socket

import pytest

from chatd import grammar
from loopback import download, sha, upload, users

MiB = 2**20


def wait_until(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


PRESENCE = re.compile(r"\*\*\* \S+ (joined|left( \(.*\))?)\Z")


def answer(client):
    """
    The next line that is not someone joining or leaving.
    """
    return client.expect(lambda line: not PRESENCE.match(line))


def partials(daemon):
    directory = daemon.data_dir / "partial"
    if not directory.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in directory.iterdir()}


def cut_upload(daemon, client, name, data, sent):
    """
    Send ``/upload NAME SIZE SHA256`` and the first ``sent`` bytes, then
    half-close: the server says it was cut off and keeps the bytes.
    """
    client.send(f"/upload {name} {len(data)} {sha(data)}\n".encode() + data[:sent])
    client.sock.shutdown(socket.SHUT_WR)
    assert client.expect("! ") == (f"! upload of {name} cut off: "
                                   f"{len(data) - sent} bytes missing; not stored")
    key = f"{sha(data)}-{len(data)}.part"
    wait_until(lambda: partials(daemon).get(key) == sent)


@pytest.fixture
def store(make_daemon):
    d = make_daemon("--rate", "0", "--max-file-size", "8M")
    [alice] = users(d, "alice")
    data = random.Random(5).randbytes(3 * MiB + 17)
    assert upload(alice, "big.bin", data).startswith("*** stored big.bin")
    return d, alice, data


@pytest.mark.parametrize("offset", [0, 1, 1234567, 3 * MiB + 16, 3 * MiB + 17])
def test_download_from_an_offset(store, offset):
    d, alice, data = store
    alice.say(f"/download-from {offset} big.bin")
    header = alice.line()
    assert header == f"PART {offset} {len(data)} {sha(data)} big.bin"
    assert alice.read_exact(len(data) - offset, timeout=20) == data[offset:]
    alice.say("/who")  # nothing else came: the next line answers /who
    assert alice.line().startswith("- online (")


@pytest.mark.parametrize("arg, expected", [
    ("3145746 big.bin", "! offset 3145746 is past the end of big.bin (3145745 bytes)"),
    ("-1 big.bin", "! download offset must be a whole number of bytes, not '-1'"),
    ("ten big.bin", "! download offset must be a whole number of bytes, not 'ten'"),
    ("1e3 big.bin", "! download offset must be a whole number of bytes, not '1e3'"),
    ("0 nope.bin", "! no such file: nope.bin"),
    ("5", "! usage: /download-from OFFSET NAME"),
    ("", "! usage: /download-from OFFSET NAME"),
])
def test_bad_download_offsets_get_one_error(store, arg, expected):
    d, alice, data = store
    alice.say(f"/download-from {arg}".rstrip())
    assert alice.line() == expected
    alice.say("/who")
    assert alice.line().startswith("- online (")


def test_a_name_with_spaces_after_the_offset(make_daemon):
    d = make_daemon("--rate", "0")
    [alice] = users(d, "alice")
    assert upload(alice, "my 2 notes.txt", b"0123456789").startswith("*** stored")
    alice.say("/download-from 4 my 2 notes.txt")
    assert alice.line() == f"PART 4 10 {sha(b'0123456789')} my 2 notes.txt"
    assert alice.read_exact(6) == b"456789"


def test_cut_off_upload_resumes_where_it_stopped(make_daemon):
    d = make_daemon("--rate", "0", "--max-file-size", "8M")
    alice, bob = users(d, "alice", "bob")
    data = random.Random(6).randbytes(2 * MiB + 3)
    cutter = d.client()
    cut_upload(d, cutter, "slides.pdf", data, 1500000)
    # Hidden, never listed.
    alice.say("/files")
    assert answer(alice) == "- no files shared yet"
    alice.say(f"/upload-resume slides.pdf {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume slides.pdf from 1500000"
    alice.send(data[1500000:])
    assert answer(alice) == f"*** stored slides.pdf: {len(data)} bytes, sha256 {sha(data)}"
    assert bob.expect("*** alice shared") == "*** alice shared slides.pdf (2 MiB)"
    assert download(bob, "slides.pdf")[1] == data
    assert partials(d) == {}


def test_nothing_kept_resumes_from_zero_and_a_plain_upload_never_resumes(make_daemon):
    d = make_daemon("--rate", "0")
    [alice] = users(d, "alice")
    data = os.urandom(50000)
    alice.say(f"/upload-resume a.bin {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume a.bin from 0"
    alice.send(data)
    assert answer(alice).startswith("*** stored a.bin: 50000 bytes")
    cut_upload(d, d.client(), "b.bin", data, 20000)
    assert upload(alice, "b.bin", data, sha(data)).startswith("*** stored b.bin: 50000")
    assert download(alice, "b.bin")[1] == data
    assert partials(d) == {}  # stored whole: its kept part went


def test_a_wrong_byte_in_the_kept_part_is_refused_and_deleted(make_daemon):
    d = make_daemon("--rate", "0")
    [alice] = users(d, "alice")
    data = os.urandom(100000)
    corrupt = data[:10] + bytes([data[10] ^ 1]) + data[11:]
    # The kept part carries a wrong byte (sent under the right sha256).
    cutter = d.client()
    cutter.send(f"/upload x.bin {len(data)} {sha(data)}\n".encode() + corrupt[:60000])
    cutter.sock.shutdown(socket.SHUT_WR)
    cutter.expect("! upload of x.bin cut off")
    wait_until(lambda: partials(d).get(f"{sha(data)}-{len(data)}.part") == 60000)
    alice.say(f"/upload-resume x.bin {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume x.bin from 60000"
    alice.send(data[60000:])
    assert answer(alice).startswith("! sha256 mismatch for x.bin")
    assert partials(d) == {}
    alice.say(f"/upload-resume x.bin {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume x.bin from 0"


def test_upload_resume_argument_errors(make_daemon):
    d = make_daemon("--rate", "0", "--max-file-size", "1K")
    [alice] = users(d, "alice")
    digest = sha(b"x")
    for arg, expected in [
        ("a.bin 10", "! usage: /upload-resume NAME SIZE SHA256"),
        ("", "! usage: /upload-resume NAME SIZE SHA256"),
        (f"a.bin ten {digest}", "! upload size must be a whole number of bytes, not 'ten'"),
        (f"../a.bin 10 {digest}", "! file name must not contain '/' or '\\'"),
        (f"a.bin 2000 {digest}", "! file too large: a.bin is 2 KiB (2000 bytes); "
                                 "the limit is 1 KiB (1024 bytes)"),
    ]:
        alice.say(f"/upload-resume {arg}".rstrip())
        assert answer(alice) == expected
    alice.say("still chat")  # no raw section followed any of them
    alice.say("/who")
    assert answer(alice).startswith("- online (")


def test_two_clients_resume_the_same_upload_at_once(make_daemon):
    d = make_daemon("--rate", "0")
    alice, bob = users(d, "alice", "bob")
    data = os.urandom(200000)
    cut_upload(d, d.client(), "same.bin", data, 150000)
    alice.say(f"/upload-resume same.bin {len(data)} {sha(data)}")
    bob.say(f"/upload-resume same.bin {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume same.bin from 150000"
    assert answer(bob) == ("! same.bin is being resumed by another connection; "
                          "try again later")
    bob.say("bob chats on")
    assert answer(alice) == "<bob> bob chats on"  # no raw section for bob
    alice.send(data[150000:])
    assert answer(alice).startswith("*** stored same.bin: 200000 bytes")
    assert bob.expect("*** alice shared") == "*** alice shared same.bin (195.3 KiB)"
    assert download(bob, "same.bin")[1] == data


def test_kill9_while_a_partial_is_kept_then_resume(make_daemon, tmp_path):
    data_dir = tmp_path / "store"
    d = make_daemon("--rate", "0", data_dir=data_dir)
    data = os.urandom(300000)
    cut_upload(d, d.client(), "k.bin", data, 123456)
    d.kill9()
    d = make_daemon("--rate", "0", data_dir=data_dir)
    assert partials(d) == {f"{sha(data)}-{len(data)}.part": 123456}
    [alice] = users(d, "alice")
    alice.say("/files")
    assert answer(alice) == "- no files shared yet"
    alice.say(f"/upload-resume k.bin {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume k.bin from 123456"
    alice.send(data[123456:])
    assert answer(alice).startswith("*** stored k.bin: 300000 bytes")
    assert download(alice, "k.bin")[1] == data


def test_an_idle_timeout_keeps_the_part_too(make_daemon):
    d = make_daemon("--rate", "0", "--upload-timeout", "0.5")
    [alice] = users(d, "alice")
    data = os.urandom(10000)
    c = d.client()
    c.send(f"/upload t.bin {len(data)} {sha(data)}\n".encode() + data[:4000])
    assert c.expect("! ").startswith("! upload of t.bin timed out")
    wait_until(lambda: partials(d).get(f"{sha(data)}-{len(data)}.part") == 4000)
    alice.say(f"/upload-resume t.bin {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume t.bin from 4000"


def test_kept_parts_expire(make_daemon):
    d = make_daemon("--rate", "0", "--resume-window", "0.5")
    [alice] = users(d, "alice")
    data = os.urandom(10000)
    cut_upload(d, d.client(), "e.bin", data, 5000)
    wait_until(lambda: partials(d) == {}, timeout=5)
    alice.say(f"/upload-resume e.bin {len(data)} {sha(data)}")
    assert answer(alice) == "*** resume e.bin from 0"


def test_kept_parts_are_bounded_oldest_first(make_daemon):
    d = make_daemon("--rate", "0", "--max-file-size", "64K", "--max-partial-space", "100K")
    first, second = os.urandom(64000), os.urandom(64000)
    cut_upload(d, d.client(), "1.bin", first, 60000)
    cut_upload(d, d.client(), "2.bin", second, 60000)
    # The second one pushed the first out: 100 KiB would not hold both.
    assert partials(d) == {f"{sha(second)}-{len(second)}.part": 60000}


def test_part_header_parses_as_documented():
    line = grammar.parse_server_line(b"PART 5 10 " + b"a" * 64 + b" my file")
    assert (line.kind, line.offset, line.size, line.sha256, line.text) == \
        ("part", 5, 10, "a" * 64, "my file")
