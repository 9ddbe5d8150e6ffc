"""
Downloads through ``os.sendfile`` on plain TCP: every byte goes through it
(counted by a wrapper injected into the daemon), a slow reader is paced
from disk with bounded memory while others chat and download, and a reader
that vanishes mid-file costs nothing.
"""

import hashlib
import os
import socket
import sys
import textwrap
import time

import pytest

from helpers import FAST, AdvClient, MiB, open_fds, rtt, store_file, wait_until

SITECUSTOMIZE = textwrap.dedent("""
    # Injected by the adversarial suite: count the bytes os.sendfile moves.
    import os

    _real = os.sendfile
    _log = os.environ["CHATD_TEST_SENDFILE_LOG"]

    def sendfile(out_fd, in_fd, offset, count):
        sent = _real(out_fd, in_fd, offset, count)
        with open(_log, "a") as f:
            f.write(f"{sent}\\n")
        return sent

    os.sendfile = sendfile
""")


@pytest.fixture
def counted(tmp_path, make_daemon):
    """
    ``(start, sent)``: start a daemon whose ``os.sendfile`` calls are
    counted; ``sent()`` is the bytes they moved so far.
    """
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "sendfile.log"
    log.write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(inject)] + [p for p in sys.path if p]),
               CHATD_TEST_SENDFILE_LOG=str(log))

    def start(*args):
        return make_daemon(*args, env=env)

    def sent():
        return sum(int(n) for n in log.read_text().split())

    return start, sent


def test_downloads_go_through_sendfile(counted):
    start, sent = counted
    d = start("--rate", "0", "--max-file-size", "16M")
    u, data = store_file(d.port, 12 * MiB + 5, 1)
    u.say("/download big.bin")
    assert u.line() == f"FILE {len(data)} {hashlib.sha256(data).hexdigest()} big.bin"
    assert u.read_exact(len(data), timeout=20) == data
    u.say("/download-from 1000 big.bin")
    assert u.line().startswith("PART 1000 ")
    assert u.read_exact(len(data) - 1000, timeout=20) == data[1000:]
    u.say("/who")
    assert u.line().startswith("- online (")
    assert sent() == 2 * len(data) - 1000


def test_a_slow_reader_is_paced_with_bounded_memory(counted, figure):
    start, sent = counted
    d = start("--rate", "0", "--max-file-size", "32M")
    u, data = store_file(d.port, 24 * MiB, 2)
    talker = AdvClient(d.port)
    talker.sync()
    slow = AdvClient(d.port, rcvbuf=16384)
    rss_before = d.rss()
    slow.say("/download big.bin")
    header = slow.answer()
    assert header.startswith("FILE ")
    got, latencies, peak = bytearray(), [], 0
    started = time.monotonic()
    while len(got) < len(data):
        chunk = slow.read_exact(min(256 * 1024, len(data) - len(got)), timeout=20)
        got += chunk
        if len(got) % (4 * MiB) < 256 * 1024:
            latencies.append(rtt(talker, u))  # chat goes on meanwhile
            peak = max(peak, d.rss() - rss_before)
        time.sleep(0.002)  # a reader slower than the disk
    figure("slow read of 24 MiB took", time.monotonic() - started, "s")
    figure("daemon RSS growth, peak", peak / MiB, "MiB")
    figure("bystander latency, worst", max(latencies), "s")
    assert bytes(got) == data
    assert peak < 8 * MiB, "the file was read into memory instead of paced"
    assert max(latencies) < FAST
    assert sent() == len(data)
    # A bystander downloads the same file meanwhile and after.
    talker.say("/download big.bin")
    assert talker.expect("FILE ").startswith("FILE ")
    assert talker.read_exact(len(data), timeout=20) == data


def test_a_reader_that_vanishes_mid_file(counted, figure):
    start, sent = counted
    d = start("--rate", "0", "--max-file-size", "32M")
    u, data = store_file(d.port, 16 * MiB, 3)
    u.sync()
    pid = d.proc.pid
    before = open_fds(pid)
    for how in ("close", "reset"):
        v = AdvClient(d.port, rcvbuf=65536)
        v.say("/download big.bin")
        assert v.answer().startswith("FILE ")
        v.read_exact(3 * MiB, timeout=20)
        if how == "reset":
            v.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        v.close()
        assert u.expect(lambda l: l.endswith(" left (connection lost)")), how
    assert wait_until(lambda: open_fds(pid) <= before), open_fds(pid)
    latency = rtt(u, AdvClient(d.port))
    figure("latency after two readers vanished", latency, "s")
    assert latency < FAST
    assert sent() < 2 * len(data)  # they did not get the whole file
    u.say("/download big.bin")
    assert u.expect("FILE ").startswith("FILE ")
    assert u.read_exact(len(data), timeout=30) == data
    assert "Traceback" not in d.log()
