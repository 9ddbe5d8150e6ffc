"""
Connection floods: the per-address and total limits, descriptor exhaustion,
and keepalive on every connection.
"""

import resource
import socket
import threading
import time

from helpers import (FAST, MiB, AdvClient, accept_queue, connect_retry, cpu_share,
                     open_fds, rtt, wait_until)


def _attempt(port, **kw):
    """
    Connect and read the first line: ``(client, line)``.
    """
    c = AdvClient(port, greet=False, **kw)
    first = c.line()
    if first.startswith("*** Welcome"):
        c.name = first.split("you are ")[1].split(";")[0]
    return c, first


def test_50_connections_from_one_address(make_daemon, figure):
    d = make_daemon("--max-conns-per-ip", "16")
    watcher = AdvClient(d.port, source="127.0.0.2")
    other = AdvClient(d.port, source="127.0.0.3")
    watcher.sync()
    rss_before = d.rss()

    accepted, refused = [], []
    for _ in range(50):
        c, first = _attempt(d.port)
        (accepted if first.startswith("*** Welcome") else refused).append((c, first))
    figure("accepted", len(accepted))
    figure("refused", len(refused))
    assert len(accepted) == 16 and len(refused) == 34
    for c, first in refused:
        assert first.startswith("! ") and "too many connections" in first, first
        assert c.closed(timeout=2), "a refused connection was left open"
        assert c.buffer == b"", c.buffer  # one line, nothing after it
        c.close()
    seen = watcher.sync()
    joins = [line for line in seen if line.endswith(" joined")]
    assert len(joins) == 16, seen  # refused connections never appear in chat
    assert not [line for line in seen if " left" in line], seen
    # Other addresses are not limited, and chat goes on.
    latency = rtt(other, watcher)
    figure("bystander latency with the address saturated", latency, "s")
    assert latency < FAST

    for c, _ in accepted:
        c.close()
    gone = []
    while len(gone) < 16:
        gone += [line for line in watcher.lines_until(lambda l: " left" in l)
                 if " left" in line]
    again = [_attempt(d.port) for _ in range(16)]
    assert all(first.startswith("*** Welcome") for _, first in again), again
    c, first = _attempt(d.port)
    assert first.startswith("! "), first
    assert c.closed(timeout=2)
    figure("RSS growth", (d.rss() - rss_before) / MiB, "MiB")
    latency = rtt(again[0][0], watcher)
    assert latency < FAST


def test_total_connection_limit(make_daemon, figure):
    d = make_daemon("--max-conns", "5", "--max-conns-per-ip", "0")
    first_five = [connect_retry(d.port)] + [_attempt(d.port) for _ in range(4)]
    clients = [first_five[0]] + [c for c, line in first_five[1:]]
    assert all(line.startswith("*** Welcome") for _, line in first_five[1:]), first_five
    c, line = _attempt(d.port, source="127.0.0.9")
    assert line.startswith("! ") and "full" in line, line
    assert c.closed(timeout=2)
    clients[1].close()
    late = connect_retry(d.port, timeout=3)
    latency = rtt(late, clients[0])
    figure("bystander latency", latency, "s")
    assert latency < FAST


def _limit_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_descriptor_exhaustion(make_daemon, figure):
    d = make_daemon("--max-conns-per-ip", "0", preexec_fn=_limit_fds)
    a, b = AdvClient(d.port), AdvClient(d.port)
    a.sync()
    pid = d.proc.pid
    fds_before = open_fds(pid)
    rss_before = d.rss()

    attempts, failed = [], []

    def attempt(count, pause=0.0):
        for i in range(count):
            # Connect and send a byte (an empty line): with the accept queue
            # full, only a peer that talks gets its connection completed.
            # Let the daemon drain its accept queue (50) now and then, or
            # SYNs wait a second to be retried.
            if i % 25 == 0:
                wait_until(lambda: accept_queue(d.port) == 0, timeout=2, interval=0.005)
            try:
                s = socket.create_connection(("127.0.0.1", d.port), 2)
                attempts.append(s)
                s.send(b"\n")
            except OSError:
                failed.append(1)
            time.sleep(pause)

    try:
        attempt(250)
        # Saturated: the daemon is at its descriptor limit...
        assert wait_until(lambda: open_fds(pid) >= 250, timeout=5), open_fds(pid)
        figure("daemon descriptors before / saturated", f"{fds_before} / {open_fds(pid)}")
        # ...and 50 more attempts arrive while its CPU use is measured.
        more = threading.Thread(target=attempt, args=(50, 0.018))
        more.start()
        share = cpu_share(pid, 1.0)
        more.join()
        figure("daemon CPU while saturated", share * 100, "% of a core")
        figure("connection attempts that failed at once", len(failed))
        latency = rtt(a, b)
        figure("bystander latency while saturated", latency, "s")
        assert d.proc.poll() is None, d.log()[-2000:]
        assert share < 0.3, f"busy loop at the descriptor limit: {share:.0%} of a core"
        assert latency < FAST
    finally:
        for s in attempts:
            s.close()
    # Descriptors free up: the daemon serves new connections again.
    start = time.monotonic()
    late = connect_retry(d.port, timeout=10)
    figure("serving again after the descriptors freed in", time.monotonic() - start, "s")
    latency = rtt(late, a)
    figure("bystander latency after", latency, "s")
    assert latency < FAST
    assert d.proc.poll() is None
    assert wait_until(lambda: open_fds(pid) <= fds_before + 1, timeout=5), open_fds(pid)
    figure("RSS growth", (d.rss() - rss_before) / MiB, "MiB")


def _server_timers(port):
    """
    ``(timer, ticks)`` of each established server-side socket on ``port``
    (from /proc/net/tcp: timer 2 is keepalive).
    """
    found = []
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            fields = row.split()
            local, state, timer = fields[1], fields[3], fields[5]
            if int(local.split(":")[1], 16) == port and state == "01":
                kind, when = timer.split(":")
                found.append((int(kind, 16), int(when, 16)))
    return found


def test_keepalive_on_every_connection(make_daemon, figure):
    d = make_daemon()
    clients = [AdvClient(d.port) for _ in range(3)]
    for c in clients:
        c.sync()
    time.sleep(0.3)  # every greeting acknowledged: only idle timers remain
    timers = _server_timers(d.port)
    figure("keepalive timers (kind, ticks)", str(timers))
    assert len(timers) == len(clients), timers
    assert all(kind == 2 for kind, _ in timers), timers
    idle = max(when for _, when in timers) / 100  # USER_HZ
    figure("keepalive idle", idle, "s")
    assert idle <= 120


def test_presence_limit_keeps_a_crowd_quiet(make_daemon, figure):
    d = make_daemon("--presence-limit", "3")
    first = AdvClient(d.port)
    crowd = [AdvClient(d.port) for _ in range(5)]  # 6 online in all
    seen = [line for line in first.sync() if line.endswith(" joined")]
    assert seen == [f"*** {c.name} joined" for c in crowd[:2]], seen
    for c in crowd[:2:-1]:  # 6 -> 5 -> 4 online: no departures announced
        c.close()
    assert wait_until(lambda: _online(first) == 4)
    assert first.sync() == []
    latency = rtt(crowd[0], first)
    figure("bystander latency", latency, "s")
    assert latency < FAST


def _online(client):
    client.say("/who")
    line = client.expect("- online (")
    return int(line.split("(", 1)[1].split(")", 1)[0])
