"""
Graceful shutdown of a real daemon: SIGTERM with 500 clients connected, an
upload that finishes within the grace, one that never does, and a reader
that stalled in a download: everyone is told, the finished upload is
stored, the cut one leaves nothing behind, and the process exits 0 within
the grace period.
"""

import json
import os
import selectors
import signal
import socket
import time

from loopback import upload, upload_bytes

MiB = 1024 * 1024
GRACE = 4.0
CROWD = 500


def _connect_crowd(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.setblocking(False)
        socks.append(s)
    return socks


def _read_all_until_closed(socks, timeout):
    """
    Every byte each socket receives until the server closes it.
    """
    received = {s: b"" for s in socks}
    selector = selectors.DefaultSelector()
    for s in socks:
        selector.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_ = len(socks)
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(0.2):
            try:
                chunk = key.fileobj.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received[key.fileobj] += chunk
            else:
                selector.unregister(key.fileobj)
                open_ -= 1
    selector.close()
    assert open_ == 0, f"{open_} connections still open"
    return received


def _part_sizes(data_dir):
    tmp = data_dir / "tmp"
    return sorted(p.stat().st_size for p in tmp.iterdir()) if tmp.is_dir() else []


def test_sigterm_tells_everyone_lets_uploads_finish_and_exits_zero_in_time(make_daemon):
    d = make_daemon("--max-conns-per-ip", "0", "--rate", "0", "--shutdown-grace",
                    str(GRACE), "--shutdown-message", "back at 10:00")
    sharer = d.client()
    big = os.urandom(20 * MiB)
    assert upload(sharer, "big.bin", big).startswith("*** stored big.bin")

    # A reader that asks for 20 MiB and reads nothing: stalled in a download.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", d.port))
    stalled.sendall(b"/download big.bin\n")

    # One upload will finish after the notice, one will never finish.
    finished = os.urandom(2 * MiB)
    finisher = d.client()
    finisher.send(upload_bytes("done.bin", finished)[:-MiB])
    cut = d.client()
    cut.send(b"/upload cut.bin 10485760\n" + os.urandom(MiB))

    crowd = _connect_crowd(d.port, CROWD)
    sharer.say("/who")
    deadline = time.monotonic() + 30
    while not sharer.expect("- online (").startswith(f"- online ({CROWD + 4})"):
        assert time.monotonic() < deadline
        sharer.say("/who")
    while _part_sizes(d.data_dir) != [MiB, MiB]:  # both uploads under way
        assert time.monotonic() < deadline
        time.sleep(0.02)

    started = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    notice = "*** server shutting down: back at 10:00"
    assert finisher.expect("*** server") == notice
    finisher.send(finished[-MiB:])
    assert finisher.expect("*** stored").startswith("*** stored done.bin: 2097152 bytes")
    assert finisher.closed()
    received = _read_all_until_closed(crowd + [sharer.sock, cut.sock], GRACE)
    told = [s for s, data in received.items() if notice.encode() + b"\r\n" in data]
    assert len(told) == CROWD + 2
    assert d.proc.wait(GRACE) == 0
    elapsed = time.monotonic() - started
    print(f"FIGURE shutdown with {CROWD} clients and a stalled reader: {elapsed:.2f} s")
    assert elapsed < GRACE
    stalled.close()

    # Nothing half-written is kept or listed; the finished upload is.
    assert _part_sizes(d.data_dir) == []
    index = json.loads((d.data_dir / "index.json").read_text())
    assert sorted(f["name"] for f in index["files"]) == ["big.bin", "done.bin"]
    log = d.log()
    assert f"shutting down: {CROWD + 4} connections, 3 transferring" in log
    assert "aborting 2 connections" in log  # the stalled reader, the cut upload


def test_sigint_stops_gracefully_too(make_daemon):
    d = make_daemon()
    c = d.client()
    d.proc.send_signal(signal.SIGINT)
    assert c.expect("*** server") == "*** server shutting down"
    assert c.closed()
    assert d.proc.wait(10) == 0
