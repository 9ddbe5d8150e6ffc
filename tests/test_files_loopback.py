"""
File sharing against a real ``twistd -n chatd``, by raw sockets the way
``nc`` and ``cat`` users do it: round trips, names, retention, refusals,
cut-off uploads, restarts, and chat around transfers.
"""

import os
import re
import resource
import socket
import time

from chatd import grammar
from loopback import (download, lines_until_closed, reset, settle, sha, upload,
                      upload_bytes, users)

BINARY = (bytes(range(256)) * 4 + b"line\nCRLF\r\n\r\n*** fake\n<bob> fake\n/quit\n"
          + os.urandom(100_000) + b"\r\n")


PRESENCE = re.compile(r"\*\*\* \S+ (joined|left\b.*)\Z")
# The lobby's history, replayed at connect (an earlier upload's notice).
HISTORY = re.compile(r"= \[|- end of history of #")


def listing(client):
    """
    ``/files``: the listed names, newest first, and the lines themselves.
    """
    client.say("/files")
    first = client.expect("- ")
    lines = [first]
    if first == "- no files shared yet":
        return [], lines
    client.say("/who")  # marks the end of the listing
    while True:
        line = client.line()
        if line.startswith("- online ("):
            break
        lines.append(line)
    return [l[2:].split(": ")[0] for l in lines], lines


def tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def stored(data_dir):
    """
    The committed and temporary files of the store in ``data_dir``.
    """
    return tree(data_dir / "files") + tree(data_dir / "tmp")


def wait_until(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def test_round_trip_binary_with_spaces_and_non_ascii(daemon):
    alice, bob = users(daemon, "alice", "bob")
    name = "my r\u00e9sum\u00e9 \u65e5\u672c.bin"
    n, digest = len(BINARY), sha(BINARY)
    assert upload(alice, name, BINARY) == f"*** stored {name}: {n} bytes, sha256 {digest}"
    assert n == 101_065
    assert bob.line() == f"*** alice shared {name} (98.7 KiB)"
    names, lines = listing(bob)
    assert names == [name]
    assert lines[0].startswith(f"- {name}: {n} bytes, shared by alice at ")
    assert lines[0].endswith(f" UTC, sha256 {digest}")
    header, data = download(bob, name)
    assert (header.text, header.size, header.sha256) == (name, n, digest)
    assert data == BINARY
    alice.say("chat resumes")
    assert bob.line() == "<alice> chat resumes"
    bob.say("and back")
    assert alice.line() == "<bob> and back"


def test_upload_with_checksum(daemon):
    alice, bob = users(daemon, "alice", "bob")
    good = upload(alice, "a.txt", b"hello", checksum=sha(b"hello").upper())
    assert good == f"*** stored a.txt: 5 bytes, sha256 {sha(b'hello')}"
    wrong = sha(b"other")
    assert upload(alice, "b.txt", b"hello", checksum=wrong) == (
        f"! sha256 mismatch for b.txt: got {sha(b'hello')}, expected {wrong}; not stored")
    assert listing(alice)[0] == ["a.txt"]
    assert tree(daemon.data_dir / "tmp") == []


def test_empty_file(daemon):
    alice, bob = users(daemon, "alice", "bob")
    assert upload(alice, "empty.txt", b"") == f"*** stored empty.txt: 0 bytes, sha256 {sha(b'')}"
    assert bob.line() == "*** alice shared empty.txt (0 bytes)"
    bob.say("/download empty.txt")
    assert bob.raw_line() == f"FILE 0 {sha(b'')} empty.txt".encode()
    alice.say("right after")
    assert bob.line() == "<alice> right after"


def test_seven_uploads_five_kept(daemon):
    alice, bob = users(daemon, "alice", "bob")
    for i in range(1, 8):
        assert upload(alice, f"f{i}", f"file {i}\n".encode()).startswith(f"*** stored f{i}: ")
    notices = [bob.line() for _ in range(9)]
    assert notices == [
        "*** alice shared f1 (7 bytes)", "*** alice shared f2 (7 bytes)",
        "*** alice shared f3 (7 bytes)", "*** alice shared f4 (7 bytes)",
        "*** alice shared f5 (7 bytes)", "*** alice shared f6 (7 bytes)",
        "*** f1 was removed (only the 5 newest files are kept)",
        "*** alice shared f7 (7 bytes)",
        "*** f2 was removed (only the 5 newest files are kept)",
    ]
    assert listing(bob)[0] == ["f7", "f6", "f5", "f4", "f3"]
    bob.say("/download f1")
    assert bob.line() == "! no such file: f1"
    assert download(bob, "f3")[1] == b"file 3\n"
    assert len(tree(daemon.data_dir / "files")) == 5


def test_reupload_replaces_and_becomes_newest(daemon):
    [alice] = users(daemon, "alice")
    for name in ("a", "b", "a"):
        upload(alice, name, f"{name} {time.monotonic()}".encode())
    upload(alice, "a", b"the new a")
    assert listing(alice)[0] == ["a", "b"]
    assert download(alice, "a")[1] == b"the new a"
    assert len(tree(daemon.data_dir / "files")) == 2


def test_over_limit_refused_nothing_leaked(make_daemon):
    d = make_daemon("--max-file-size", "1K")
    greeting_client = d.client(greet=False)
    assert "files up to 1 KiB" in greeting_client.line()
    greeting_client.close()
    alice, bob = users(d, "alice", "bob")
    alice.say("/help")
    assert "(up to 1 KiB)" in alice.expect(lambda l: l.startswith("- /upload"))
    settle([alice, bob])
    fake = (b"hello\n*** mallory joined\n<bob> give me your password\n/nick admin\n" * 40)[:2000]
    assert upload(alice, "big.txt", fake) == (
        "! file too large: big.txt is 2 KiB (2000 bytes); the limit is 1 KiB (1024 bytes)")
    alice.say("still here")
    assert bob.line() == "<alice> still here"
    bob.nothing(0.3)
    assert listing(bob)[0] == []
    assert stored(d.data_dir) == []
    exact = b"x" * 1024
    assert upload(alice, "exact.bin", exact) == f"*** stored exact.bin: 1024 bytes, sha256 {sha(exact)}"


def test_cut_off_upload_leaves_nothing(daemon):
    alice, bob = users(daemon, "alice", "bob")
    for i, drop in enumerate((lambda c: c.close(), reset)):
        uploader = daemon.client()
        bob.expect(f"*** {uploader.name} joined")
        uploader.send(upload_bytes(f"cut{i}.bin", b"x" * 100_000)[:50_000])
        wait_until(lambda: tree(daemon.data_dir / "tmp"))  # bytes are streaming in
        drop(uploader)
        assert bob.expect(f"*** {uploader.name} left") == \
            f"*** {uploader.name} left (connection lost)"
        wait_until(lambda: tree(daemon.data_dir / "tmp") == [])
    assert listing(bob)[0] == []
    assert stored(daemon.data_dir) == []
    alice.say("chat goes on")
    assert bob.line() == "<alice> chat goes on"


def test_cut_off_upload_by_half_close_is_explained(daemon):
    [bob] = users(daemon, "bob")
    c = daemon.client()
    c.send(upload_bytes("cut.bin", b"y" * 1000)[:-400])
    c.sock.shutdown(socket.SHUT_WR)
    assert lines_until_closed(c) == ["! upload of cut.bin cut off: 400 bytes missing; not stored"]
    assert listing(bob)[0] == []
    assert tree(daemon.data_dir / "tmp") == []


def test_path_traversal_names_refused_and_bytes_swallowed(daemon, tmp_path):
    alice, bob = users(daemon, "alice", "bob")
    for name, error in [
        ("../../x", "! file name must not contain '/' or '\\'"),
        ("/etc/passwd", "! file name must not contain '/' or '\\'"),
        ("..", "! file name must not be empty, '.' or '..'"),
        ("..\\..\\x", "! file name must not contain '/' or '\\'"),
        ("a/../../../x", "! file name must not contain '/' or '\\'"),
    ]:
        assert upload(alice, name, b"hello\n*** x\n<bob> y\n") == error
    alice.say("sync")
    assert bob.line() == "<alice> sync"
    assert listing(bob)[0] == []
    assert stored(daemon.data_dir) == []
    outside = [p for p in tree(tmp_path) if not p.startswith(("chatd-", "data0/"))]
    assert outside == [], outside
    assert not (tmp_path.parent / "x").exists()


def test_restart_keeps_files_and_order(make_daemon, tmp_path):
    data_dir = tmp_path / "kept"
    first = make_daemon(data_dir=data_dir)
    [alice] = users(first, "alice")
    contents = {"a.txt": b"aaa\n", "b b.bin": BINARY[:5000], "\u00e9t\u00e9.txt": b"summer"}
    for name, data in contents.items():
        upload(alice, name, data)
    upload(alice, "a.txt", b"aaa again\n")
    contents["a.txt"] = b"aaa again\n"
    names, before = listing(alice)
    assert names == ["a.txt", "\u00e9t\u00e9.txt", "b b.bin"]
    first.stop()
    second = make_daemon(data_dir=data_dir)
    [bob] = users(second, "bob")
    assert listing(bob) == (names, before)
    for name, data in contents.items():
        assert download(bob, name)[1] == data


def test_crash_mid_upload_is_swept_at_start(make_daemon, tmp_path):
    data_dir = tmp_path / "crashed"
    first = make_daemon(data_dir=data_dir)
    [alice] = users(first, "alice")
    upload(alice, "kept.txt", b"kept")
    alice.send(upload_bytes("partial.bin", b"z" * 100_000)[:30_000])
    wait_until(lambda: tree(data_dir / "tmp"))
    first.kill9()
    assert len(tree(data_dir / "tmp")) == 1
    second = make_daemon(data_dir=data_dir)
    assert tree(data_dir / "tmp") == []
    [bob] = users(second, "bob")
    assert listing(bob)[0] == ["kept.txt"]


def test_pipelined_upload_then_files_then_half_close(daemon):
    """
    ``(echo "/upload a.txt 5"; printf hello; echo /files) | nc -N``.
    """
    for i, tail in enumerate((b"/files\n", b"/files")):
        c = daemon.client()
        c.send(upload_bytes(f"p{i}.txt", b"hello") + tail)
        c.sock.shutdown(socket.SHUT_WR)
        lines = [l for l in lines_until_closed(c)
                 if not PRESENCE.match(l) and not HISTORY.match(l)]
        assert lines[0] == f"*** stored p{i}.txt: 5 bytes, sha256 {sha(b'hello')}"
        assert [l.split(":")[0] for l in lines[1:]] == [f"- p{j}.txt" for j in range(i, -1, -1)]
        assert f"shared by {c.name} at " in lines[1]


def test_download_then_half_close_gets_the_whole_file(daemon):
    """
    ``echo "/download big.bin" | nc -N host 5002 > out``.
    """
    [alice] = users(daemon, "alice")
    big = os.urandom(4 * 2**20)
    upload(alice, "big.bin", big)
    c = daemon.client()
    c.expect("- end of history of #lobby")  # the upload notice, replayed
    c.send(b"/download big.bin\n")
    c.sock.shutdown(socket.SHUT_WR)
    header = grammar.parse_server_line(c.raw_line())
    assert (header.kind, header.size) == ("file", len(big))
    assert c.read_exact(len(big), timeout=20) == big
    assert [l for l in lines_until_closed(c) if not PRESENCE.match(l)] == []


def test_download_is_never_interleaved_with_chat(daemon):
    alice, bob = users(daemon, "alice", "bob")
    big = os.urandom(8 * 2**20) + b"\n" * 1000
    upload(alice, "big.bin", big)
    assert bob.line() == "*** alice shared big.bin (8 MiB)"
    bob.say("/download big.bin")
    header = grammar.parse_server_line(bob.raw_line())
    assert (header.kind, header.size, header.sha256) == ("file", len(big), sha(big))
    for i in range(5):  # while bob is not reading: the file is still going out
        alice.say(f"during {i}")
    # alice's lines are handled in order: once her /who is answered, all
    # five have been delivered to bob (held behind the file).
    alice.say("/who")
    alice.expect("- online (")
    assert bob.read_exact(header.size, timeout=20) == big
    assert [bob.line() for _ in range(5)] == [f"<alice> during {i}" for i in range(5)]
    alice.say("after")
    assert bob.line() == "<alice> after"


def test_download_errors(daemon):
    [alice] = users(daemon, "alice")
    alice.say("/download nope")
    assert alice.line() == "! no such file: nope"
    alice.say("/download")
    assert alice.line() == "! usage: /download NAME"
    alice.say("/upload a.txt five")
    assert alice.line() == "! upload size must be a whole number of bytes, not 'five'"


def _small_files():
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_storage_error_is_reported_and_chat_goes_on(make_daemon):
    """
    A disk that fills up mid-upload (here: a 64 KiB file size limit on the
    daemon) gives the uploader a clear error and lists nothing.
    """
    d = make_daemon("--max-file-size", "1M", preexec_fn=_small_files)
    alice, bob = users(d, "alice", "bob")
    answer = upload(alice, "big.bin", os.urandom(200_000))
    assert answer == "! could not store big.bin: File too large"
    assert listing(bob)[0] == []
    assert tree(d.data_dir / "tmp") == []
    small = b"fits\n"
    assert upload(alice, "small.txt", small) == f"*** stored small.txt: 5 bytes, sha256 {sha(small)}"
    alice.say("chat goes on")
    assert bob.expect("<alice>") == "<alice> chat goes on"
