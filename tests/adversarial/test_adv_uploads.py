"""
Uploads that lie (size, checksum, names, stalling), a disk that fills, and
kill -9 in the middle of an upload.
"""

import errno
import hashlib
import os
import random
import re
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import FAST, AdvClient, files_under, rtt, wait_until


def sha(data):
    return hashlib.sha256(data).hexdigest()


FILES_LINE = re.compile(r"- (.+): (\d+) bytes, shared by \S+ at .+ UTC, sha256 ([0-9a-f]{64})\Z")


def listing(client):
    """
    ``[(name, size, sha256)]`` from ``/files``, newest first.
    """
    client.say("/files")
    client.say("/who")
    lines = client.lines_until("- online (")[:-1]
    files = [line for line in lines if line.startswith("- ")]
    if files == ["- no files shared yet"]:
        return []
    result = []
    for line in files:
        match = FILES_LINE.match(line)
        assert match, line
        result.append((match.group(1), int(match.group(2)), match.group(3)))
    return result


def download(client, name):
    client.say(f"/download {name}")
    header = client.expect(lambda l: l.startswith(("FILE ", "! ")))
    assert header.startswith("FILE "), header
    _, size, digest, got = header.split(" ", 3)
    assert got == name, header
    data = client.read_exact(int(size))
    return data, digest


def upload(client, name, data, digest=None, tail=b""):
    """
    Send ``/upload`` and the bytes in one write; return the answer line.
    """
    head = f"/upload {name} {len(data)}" + (f" {digest}" if digest else "")
    client.send(head.encode() + b"\n" + data + tail)
    return client.expect(lambda l: l.startswith(("*** stored ", "! ")))


def assert_quiet(sender, watcher):
    """
    ``watcher`` gets nothing from ``sender`` before the next marker line.
    """
    sender.say("marker")
    seen = watcher.lines_until(f"<{sender.name}> marker")
    assert seen == [f"<{sender.name}> marker"], seen


def assert_store_clean(data_dir, listed):
    """
    ``files/`` holds exactly the listed files, ``tmp/`` nothing.
    """
    assert os.listdir(data_dir / "tmp") == []
    assert len(os.listdir(data_dir / "files")) == len(listed)


@pytest.fixture
def pair(make_daemon, tmp_path):
    def start(*args, data_dir=None):
        d = make_daemon("--rate", "0", "--max-file-size", "64K", *args, data_dir=data_dir)
        u, w = AdvClient(d.port), AdvClient(d.port)
        u.sync()
        w.sync()
        return d, u, w
    return start


def test_declared_size_over_the_limit(pair, figure):
    d, u, w = pair()
    body = (b"evil chat line\n/nick hacker\n/upload x 3\n" * 3000)[:100000]
    answer = upload(u, "big.bin", body)
    assert answer.startswith("! file too large: big.bin"), answer
    assert_quiet(u, w)  # the bytes were swallowed, none became chat
    assert u.sync() == []
    assert listing(w) == []
    assert_store_clean(d.data_dir, [])
    latency = rtt(u, w)
    figure("bystander latency", latency, "s")
    assert latency < FAST


def test_fewer_bytes_then_silence_times_out(pair, figure):
    d, u, w = pair("--upload-timeout", "2")
    slow, liar = AdvClient(d.port), AdvClient(d.port)
    u.sync()
    w.sync()
    # One upload stops after half its bytes; another trickles but never
    # idles for 2 s, so only the first is cancelled.  A refused upload whose
    # bytes are being swallowed times out the same way.
    u.send(b"/upload short.bin 1000\n" + b"s" * 500)
    liar.send(b"/upload huge.bin 100000\n" + b"x" * 10)
    slow.send(b"/upload trickle.bin 3\n")
    start = time.monotonic()
    answer = elapsed = None
    for step in (1, 2, 3):
        while time.monotonic() < start + 1.2 * step:
            if answer is None:
                try:
                    line = u.line(max(0.01, start + 1.2 * step - time.monotonic()))
                    if not line.startswith(f"<{w.name}> ping-"):
                        answer, elapsed = line, time.monotonic() - start
                except TimeoutError:
                    pass
            else:
                time.sleep(max(0.0, start + 1.2 * step - time.monotonic()))
        slow.send(b"t")
        if step == 1:
            latency = rtt(w, slow)  # chat goes on meanwhile
    figure("stalled upload cancelled after", elapsed, "s")
    figure("bystander latency meanwhile", latency, "s")
    assert answer.startswith("! upload of short.bin timed out"), answer
    assert 1.8 <= elapsed <= 4.5, elapsed
    assert u.closed(timeout=3)
    assert liar.expect("! ").startswith("! file too large: huge.bin")
    assert liar.expect("! ").startswith("! refused upload timed out")
    assert liar.closed(timeout=3)
    assert slow.expect("*** stored trickle.bin: 3 bytes").endswith(sha(b"ttt"))
    assert latency < FAST
    seen = w.lines_until(f"*** {slow.name} shared trickle.bin")
    assert f"*** {u.name} left (upload timed out)" in seen, seen
    assert f"*** {liar.name} left (upload timed out)" in seen, seen
    assert [l for l in seen if "short.bin" in l] == [], seen
    assert [name for name, _, _ in listing(w)] == ["trickle.bin"]
    assert_store_clean(d.data_dir, ["trickle.bin"])


def test_more_bytes_than_declared_are_lines(pair):
    d, u, w = pair()
    data = b"0123456789"
    answer = upload(u, "ok.txt", data, tail=b"excess is chat\n/nick excess\n")
    assert answer == f"*** stored ok.txt: 10 bytes, sha256 {sha(data)}", answer
    assert u.line() == f"*** {u.name} is now known as excess"
    assert w.line() == f"*** {u.name} shared ok.txt (10 bytes)"
    assert w.line() == f"<{u.name}> excess is chat"
    assert w.line() == f"*** {u.name} is now known as excess"
    u.name = "excess"
    assert download(w, "ok.txt") == (data, sha(data))


def test_sha256_mismatch(pair):
    d, u, w = pair()
    data = os.urandom(100)
    wrong = sha(data + b"!")
    answer = upload(u, "m.bin", data, digest=wrong)
    assert answer.startswith("! sha256 mismatch for m.bin"), answer
    assert_quiet(u, w)
    assert listing(w) == []
    assert_store_clean(d.data_dir, [])
    answer = upload(u, "m.bin", data, digest=sha(data).upper())
    assert answer == f"*** stored m.bin: 100 bytes, sha256 {sha(data)}", answer
    assert listing(w) == [("m.bin", 100, sha(data))]


HOSTILE_NAMES = [
    b"../../x", b"../x", b"..", b".", b"/etc/passwd", b"dir/../../x", b"a\\b",
    b"a\x00b", b"a" * 300, "\u00e9".encode() * 128, b"a\rb", b"\x1b[31mred",
    b"a\xe2\x80\xaeb", b"a\xe2\x80\xa8b", b"bad\xffutf8", b"tab\tname\x7f",
]


def test_hostile_file_names(pair, tmp_path):
    d, u, w = pair()
    outside = [tmp_path / "x", tmp_path.parent / "x", d.data_dir / "x",
               d.data_dir / "files" / "x", d.data_dir.parent.parent / "x"]
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    before = [p for p in files_under(tmp_path) if not p.endswith(".log")]
    for name in HOSTILE_NAMES:
        u.send(b"/upload " + name + b" 5\nabcde")
        answer = u.line()
        assert answer.startswith("! "), (name, answer)
    assert u.sync() == []
    assert_quiet(u, w)
    assert listing(w) == []
    assert_store_clean(d.data_dir, [])
    after = [p for p in files_under(tmp_path) if not p.endswith(".log")]
    assert after == before
    assert not [p for p in outside if p.exists()]
    with open("/etc/passwd", "rb") as f:
        assert f.read() == passwd


# --- a disk that fills ------------------------------------------------------

SITECUSTOMIZE = textwrap.dedent("""
    # Injected by the adversarial suite: uploads hit ENOSPC past a size.
    import errno, os
    import chatd.upload as _upload

    _LIMIT = int(os.environ["CHATD_TEST_ENOSPC_AFTER"])
    _open = open

    class _SmallDisk:
        def __init__(self, f):
            self._f, self._written = f, 0

        def write(self, data):
            if self._written + len(data) > _LIMIT:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._written += len(data)
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

    def open(path, mode="r", *args, **kw):
        f = _open(path, mode, *args, **kw)
        return _SmallDisk(f) if "w" in mode and str(path).endswith(".part") else f

    _upload.open = open
""")


def _mount_tmpfs(path):
    """
    Mount a 1 MiB tmpfs at ``path``, or fail the test saying why (CI runs
    as root: a disk that really fills is the point of this case).
    """
    path.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                       check=True, capture_output=True, timeout=10)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"cannot mount a tmpfs at {path} (needs root): "
                    f"{e.stderr.decode(errors='replace').strip()}")
    except (OSError, subprocess.SubprocessError) as e:
        pytest.fail(f"cannot mount a tmpfs at {path} (needs root and mount): {e}")
    assert os.path.ismount(path), f"{path} is not a mount point after mount"


@pytest.fixture
def small_disk(request, tmp_path):
    """
    ``(mode, data_dir, env)``: a real 1 MiB tmpfs ("tmpfs"), or a data dir
    whose uploads get ENOSPC past 1 MiB ("injected").
    """
    data_dir = tmp_path / "small"
    if request.param == "tmpfs":
        _mount_tmpfs(data_dir)
        yield "tmpfs", data_dir, None
        subprocess.run(["umount", str(data_dir)], capture_output=True)
        if os.path.ismount(data_dir):
            subprocess.run(["umount", "-l", str(data_dir)], capture_output=True)
        return
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(inject)] + [p for p in sys.path if p])
    env = dict(os.environ, PYTHONPATH=path, CHATD_TEST_ENOSPC_AFTER=str(1024 * 1024))
    yield "injected ENOSPC", data_dir, env


@pytest.mark.parametrize("small_disk", ["tmpfs", "injected"], indirect=True)
def test_disk_fills_mid_upload(small_disk, make_daemon, figure):
    mode, data_dir, env = small_disk
    figure("disk", mode)
    d = make_daemon("--rate", "0", "--max-file-size", "4M", data_dir=data_dir, env=env)
    u, w = AdvClient(d.port), AdvClient(d.port)
    u.sync()
    w.sync()
    data = random.Random(9).randbytes(2 * 1024 * 1024)
    start = time.monotonic()
    answer = upload(u, "big.bin", data, tail=b"after the upload\n")
    figure("uploader answered in", time.monotonic() - start, "s")
    assert answer.startswith("! could not store big.bin"), answer
    assert os.strerror(errno.ENOSPC) in answer, answer
    assert w.line() == f"<{u.name}> after the upload"  # chat goes on
    latency = rtt(w, u)
    figure("bystander latency", latency, "s")
    assert latency < FAST
    assert listing(w) == []
    assert_store_clean(data_dir, [])
    # The space is free again: a small file is stored and comes back intact.
    small = os.urandom(100 * 1024)
    assert upload(u, "small.bin", small).startswith("*** stored small.bin")
    assert download(w, "small.bin") == (small, sha(small))


# --- kill -9 ------------------------------------------------------------


def _check_store(make_daemon, data_dir, known):
    """
    Restart on ``data_dir``: every listed file downloads with its listed
    sha256, matches what was uploaded, and nothing partial remains.
    Returns the listed names.
    """
    d = make_daemon("--rate", "0", data_dir=data_dir)
    c = AdvClient(d.port)
    listed = listing(c)
    for name, size, digest in listed:
        assert name in known, listed
        data, header_digest = download(c, name)
        assert (len(data), sha(data)) == (size, digest) == (len(known[name]), sha(known[name]))
        assert header_digest == digest
    assert_store_clean(data_dir, listed)
    d.stop()
    return [name for name, _, _ in listed]


def test_kill9_mid_upload_leaves_an_intact_store(make_daemon, tmp_path, figure):
    data_dir = tmp_path / "store"
    d = make_daemon("--rate", "0", data_dir=data_dir)
    u = AdvClient(d.port)
    known = {"a.bin": os.urandom(50_000), "b.txt": b"hello\n" * 100}
    for name, data in known.items():
        assert upload(u, name, data).startswith(f"*** stored {name}")
    # Half of a 1 MiB upload is on disk when the daemon dies.
    partial = os.urandom(1024 * 1024)
    u.send(b"/upload c.bin %d\n" % len(partial) + partial[:512 * 1024])

    def part_size():
        parts = list((data_dir / "tmp").iterdir())
        return parts and parts[0].stat().st_size >= 256 * 1024

    assert wait_until(part_size), "no partial upload on disk"
    d.kill9()
    assert os.listdir(data_dir / "tmp"), "expected a partial file left by the crash"
    assert sorted(_check_store(make_daemon, data_dir, known)) == ["a.bin", "b.txt"]

    # Killed while a complete upload is being committed: listed intact, or
    # not at all; and listed for sure if the uploader was told it was stored
    # (the last round waits for that answer before the kill).
    outcomes = []
    for delay in (0.0, 0.005, 0.02, "stored"):
        d = make_daemon("--rate", "0", data_dir=data_dir)
        u = AdvClient(d.port)
        name = f"race{delay}.bin"
        known[name] = os.urandom(300 * 1024)
        u.send(b"/upload %s %d\n" % (name.encode(), len(known[name])) + known[name])
        if delay == "stored":
            u.expect(f"*** stored {name}")
            acknowledged = True
        else:
            time.sleep(delay)  # the race itself: any moment of the commit
        d.kill9()
        if delay != "stored":
            acknowledged = any(l.startswith(f"*** stored {name}")
                               for l in _lines_before_close(u))
        listed = _check_store(make_daemon, data_dir, known)
        outcomes.append((delay, acknowledged, name in listed))
        assert {"a.bin", "b.txt"} <= set(listed)
        if acknowledged:
            assert name in listed, f"{name} was acknowledged as stored but is lost"
        # Every other race file is listed or gone, never partial
        # (``_check_store`` compared every listed file with its bytes).
    figure("racing uploads (delay, acknowledged, listed) after kill -9", str(outcomes))
    assert outcomes[-1] == ("stored", True, True)


def _lines_before_close(client):
    """
    What the server sent before the connection died.
    """
    lines = []
    while True:
        try:
            lines.append(client.line(2))
        except (ConnectionError, OSError):
            return lines


# --- space for uploads in progress -----------------------------------------


def _part_bytes(data_dir):
    return sum(p.stat().st_size for p in (data_dir / "tmp").iterdir())


def test_upload_space_and_uploads_per_address(make_daemon, figure):
    """
    ``--max-upload-space 192K`` with 64 KiB files: three uploads in progress
    fill it; one address has at most two at once.  Refusals come before any
    byte is stored and their bytes are swallowed, never chat.
    """
    d = make_daemon("--rate", "0", "--max-file-size", "64K",
                    "--max-upload-space", "192K")
    watcher = AdvClient(d.port, source="127.0.0.9")
    a1, a2, a3 = (AdvClient(d.port, source="127.0.0.2") for _ in range(3))
    b1, c1 = AdvClient(d.port, source="127.0.0.3"), AdvClient(d.port, source="127.0.0.4")
    for c in (watcher, a1, a2, a3, b1, c1):
        c.sync()
    size = 64 * 1024
    data = {c: os.urandom(size) for c in (a1, a2, a3, b1, c1)}
    # Three uploads under way (half their bytes sent): 192 KiB reserved.
    for c in (a1, a2, b1):
        c.send(b"/upload %s.bin %d\n" % (c.name.encode(), size) + data[c][:size // 2])
    assert wait_until(lambda: _part_bytes(d.data_dir) >= 3 * size // 2), "uploads did not start"

    a3.send(b"/upload a3.bin %d\n" % size + data[a3] + b"not chat\n")
    answer = a3.expect("! ")
    assert answer == "! too many uploads in progress from your address (limit 2); " \
                     "try again when one is done", answer
    c1.send(b"/upload c1.bin %d\n" % size + data[c1] + b"not chat either\n")
    answer = c1.expect("! ")
    figure("refusal", answer)
    assert answer == ("! no room for uploads right now: 192 KiB of uploads in progress "
                      "(limit 192 KiB); try again in a moment"), answer
    seen = watcher.sync()
    assert [l for l in seen if "not chat" in l] == [f"<{a3.name}> not chat",
                                                   f"<{c1.name}> not chat either"], seen
    assert len(list((d.data_dir / "tmp").iterdir())) == 3  # nothing stored for them

    # One finishes: there is room again, for that address too.
    a1.send(data[a1][size // 2:])
    assert a1.expect("*** stored ").startswith(f"*** stored {a1.name}.bin")
    assert upload(c1, "c1.bin", data[c1]).startswith("*** stored c1.bin")
    for c in (a2, b1):
        c.send(data[c][size // 2:])
        assert c.expect("*** stored ").startswith(f"*** stored {c.name}.bin")
    assert upload(a3, "a3.bin", data[a3]).startswith("*** stored a3.bin")
    assert os.listdir(d.data_dir / "tmp") == []


def test_upload_space_is_freed_by_a_cut_off_upload(make_daemon):
    d = make_daemon("--rate", "0", "--max-file-size", "64K",
                    "--max-upload-space", "64K")
    u, w = AdvClient(d.port), AdvClient(d.port, source="127.0.0.2")
    w.sync()
    u.send(b"/upload cut.bin 65536\n" + b"x" * 1000)
    assert wait_until(lambda: os.listdir(d.data_dir / "tmp"))  # under way
    assert upload(w, "w.bin", b"w" * 10).startswith("! no room for uploads right now")
    u.close()
    assert wait_until(lambda: not os.listdir(d.data_dir / "tmp"))
    assert upload(w, "w.bin", b"w" * 10).startswith("*** stored w.bin")
