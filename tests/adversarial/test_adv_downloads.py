"""
Downloads that pile up: a client that asks for the same file hundreds of
times and never reads must not hold the daemon's descriptors.
"""

import hashlib

from helpers import FAST, AdvClient, MiB, open_fds, rtt, store_file, wait_until


def test_300_queued_downloads_hold_no_descriptors(make_daemon, figure):
    d = make_daemon("--rate", "0", "--max-file-size", "8M")
    uploader, data = store_file(d.port, 4 * MiB, 11)
    watcher = AdvClient(d.port)
    watcher.sync()
    pid = d.proc.pid
    before = open_fds(pid)

    hog = AdvClient(d.port, rcvbuf=4096)
    hog.send(b"/download big.bin\n" * 300 + b"all asked\n")
    # Lines are handled in order: once the chat line after them reaches the
    # watcher, every /download has been answered (queued or refused).
    watcher.expect(f"<{hog.name}> all asked", timeout=10)
    held = open_fds(pid) - before
    figure("daemon descriptors held by 300 queued downloads", held)
    assert held <= 4, f"{held} descriptors more than before the downloads"

    # Everyone else still connects and downloads.
    latency = rtt(uploader, watcher)
    figure("bystander latency", latency, "s")
    assert latency < FAST
    late = AdvClient(d.port)
    late.say("/download big.bin")
    assert late.answer() == f"FILE {len(data)} {hashlib.sha256(data).hexdigest()} big.bin"
    assert late.read_exact(len(data), timeout=20) == data

    # The hog was told, once per refused request, and its first downloads
    # are intact when it finally reads.
    hog.sock.settimeout(20)
    header = hog.answer(timeout=20)
    assert header.startswith("FILE "), header
    assert hog.read_exact(len(data), timeout=20) == data
    hog.close()
    late.close()
    assert wait_until(lambda: open_fds(pid) <= before, timeout=5), open_fds(pid)


def test_too_many_queued_downloads_is_answered(make_daemon):
    d = make_daemon("--rate", "0", "--max-file-size", "8M")
    _, data = store_file(d.port, 4 * MiB, 12)
    hog = AdvClient(d.port)
    hog.sync()
    hog.send(b"/download big.bin\n" * 20 + b"/who\n")
    digest = hashlib.sha256(data).hexdigest()
    served = refused = 0
    while True:
        line = hog.line(timeout=20)
        if line.startswith("FILE "):
            assert line == f"FILE {len(data)} {digest} big.bin", line
            assert hog.read_exact(len(data), timeout=20) == data
            served += 1
        elif line == "! too many downloads queued":
            refused += 1
        elif line.startswith("- online ("):
            break
        else:
            raise AssertionError(line)
    assert served + refused == 20
    assert 1 <= served <= 10, served
    assert refused >= 10, refused
