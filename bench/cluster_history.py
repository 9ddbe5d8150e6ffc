"""
The cluster's shared history (issue 15) in this process, against a real
``redis-server`` of its own (no persistence, a free port): what writing
each line to Redis costs the reactor thread, side by side with the
single-node SQLite store and with the cluster hub without history; a
burst said line after line (100 lines per reactor turn) must leave Redis
holding the last lines in order with nothing dropped; and how long a node
takes to load its rings for ``--max-rooms`` rooms when its link comes up.

    .venv/bin/python -m bench.cluster_history [--members 5000] [--lines 2000]

Prints a Markdown table; ``--output FILE`` writes it there too.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import defer, task
from bench.history import Null
from chatd.cluster.config import parse_redis_url
from chatd.cluster.history import RedisHistory
from chatd.cluster.hub import ClusterHub
from chatd.history import SQLiteHistory
from chatd.hub import Hub

KEEP = 50  # --history's default
PAGE = 500  # what Redis keeps per room for /history


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(directory):
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--dir", directory, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)


def flush(port):
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        s.recv(100)


@defer.inlineCallbacks
def cluster_hub(reactor, port, keep, max_rooms=1000):
    store = RedisHistory(keep=PAGE, max_rooms=max_rooms) if keep else None
    hub = ClusterHub(parse_redis_url(f"redis://127.0.0.1:{port}/0"), reactor,
                     history=keep, store=store, max_rooms=max_rooms)
    if store is not None:
        store.attach(hub.link, hub.keys.prefix)
    registered = hub.when_registered()
    hub.start()
    yield registered
    return hub


def room_of(hub, members):
    clients = [Null() for _ in range(members)]
    for c in clients:
        hub.connect(c)
    return clients


@defer.inlineCallbacks
def answered(hub, reactor):
    """
    Until Redis has answered every command the hub sent.
    """
    while hub.link.pending:
        yield task.deferLater(reactor, 0.001, lambda: None)


@defer.inlineCallbacks
def cluster_room(hub, reactor, members, chunk=1000):
    clients = []
    for i in range(0, members, chunk):
        clients += room_of(hub, min(chunk, members - i))
        yield answered(hub, reactor)
    return clients


@defer.inlineCallbacks
def cpu_per_line(reactor, port, members, lines, workdir, rounds=3):
    """
    Reactor-thread CPU per line said into the lobby of ``members``: the
    say loop and every reply Redis sends back for it; best of ``rounds``,
    in alternating order.
    """
    variants = ["cluster, history off", "cluster, history in redis",
                "one node, history in sqlite (queued)"]
    out = {v: float("inf") for v in variants}
    for round_ in range(rounds):
        for variant in (variants if round_ % 2 == 0 else variants[::-1]):
            per_line = yield _per_line(reactor, port, members, lines, workdir, variant)
            out[variant] = min(out[variant], per_line)
    return out


@defer.inlineCallbacks
def _per_line(reactor, port, members, lines, workdir, variant):
    if variant.startswith("one node"):
        hub = Hub(history=KEEP, store=SQLiteHistory.in_directory(
            os.path.join(workdir, "sqlite"), reactor, PAGE))
        clients = room_of(hub, members)
        start = time.thread_time()
        for i in range(lines):
            hub.say(clients[0], f"line {i}")
        return (time.thread_time() - start) / lines
    flush(port)
    hub = yield cluster_hub(reactor, port, KEEP if "redis" in variant else 0)
    clients = yield cluster_room(hub, reactor, members)
    start = time.thread_time()
    for i in range(lines):
        hub.say(clients[0], f"line {i}")
        if i % 1000 == 999:
            yield answered(hub, reactor)
    yield answered(hub, reactor)
    took = time.thread_time() - start
    yield hub.stop()
    return took / lines


@defer.inlineCallbacks
def burst(reactor, port, count, per_turn=100):
    flush(port)
    hub = yield cluster_hub(reactor, port, KEEP)
    (sender,) = room_of(hub, 1)
    start = time.monotonic()
    for i in range(0, count, per_turn):
        for j in range(i, min(i + per_turn, count)):
            hub.say(sender, f"burst {j}")
        yield task.deferLater(reactor, 0, lambda: None)
    yield answered(hub, reactor)
    took = time.monotonic() - start
    kept = yield hub.store.recent("lobby", PAGE)
    expected = [f"<{sender.name}> burst {j}" for j in range(count - PAGE, count)]
    result = {"lines": count, "seconds": took, "dropped": hub.store.dropped,
              "in_order": [line for _, line in kept] == expected}
    yield hub.stop()
    return result


@defer.inlineCallbacks
def reload(reactor, port, rooms, keep):
    """
    Fill Redis with ``rooms`` x ``keep`` lines, then time a node's load.
    """
    flush(port)
    writer = yield cluster_hub(reactor, port, keep, max_rooms=rooms + 1)
    (c,) = room_of(writer, 1)
    for r in range(rooms):
        writer.join(c, f"room{r}")
        for n in range(keep):
            writer.say(c, f"line {n} of room {r}, about as long as a chat line is")
        writer.part(c, f"room{r}")
        if r % 20 == 0:
            yield answered(writer, reactor)
    yield answered(writer, reactor)
    yield writer.stop()
    hub = yield cluster_hub(reactor, port, keep, max_rooms=rooms + 1)
    best_wall, best_cpu, best_stall = float("inf"), float("inf"), float("inf")
    for _ in range(3):
        stalls = Stalls(reactor)
        wall, cpu = time.monotonic(), time.thread_time()
        yield hub._reload_history()
        best_wall = min(best_wall, time.monotonic() - wall)
        best_cpu = min(best_cpu, time.thread_time() - cpu)
        best_stall = min(best_stall, stalls.stop())
    loaded = sum(1 for r in hub.rooms.values() if r.history)
    yield hub.stop()
    return {"rooms": rooms, "lines": keep, "loaded": loaded,
            "wall_s": best_wall, "cpu_s": best_cpu, "stall_s": best_stall}


class Stalls:
    """
    The longest the reactor went without running a 1 ms timer.
    """

    def __init__(self, reactor):
        self.longest = 0.0
        self.last = time.monotonic()
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = reactor
        self.loop.start(0.001)

    def tick(self):
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def stop(self):
        self.tick()
        self.loop.stop()
        return self.longest


def report(args, cpu, burst_result, reload_result):
    ref = cpu["one node, history in sqlite (queued)"]
    off = cpu["cluster, history off"]
    rows = [f"# Shared history (issue 15), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "", f"`python -m bench.cluster_history {' '.join(sys.argv[1:])}`; "
            f"{os.cpu_count()} cores, in one process with a real redis-server.", "",
            f"Reactor-thread CPU per line said into a room of {args.members:,} "
            f"(null clients; {args.lines:,} lines, best of 3 rounds):", "",
            "| variant | µs per line | ÷ one node with SQLite | ÷ cluster without history |",
            "|---|---|---|---|"]
    for name, value in cpu.items():
        rows.append(f"| {name} | {value * 1e6:.1f} | {value / ref:.3f}× | {value / off:.3f}× |")
    b = burst_result
    rows += ["", f"Burst: {b['lines']:,} lines said 100 per reactor turn in "
             f"{b['seconds']:.2f} s ({b['lines'] / b['seconds']:,.0f} lines/s), "
             f"{b['dropped']} writes dropped; Redis holds the last {PAGE} in order: "
             f"{'yes' if b['in_order'] else 'NO'}.", ""]
    r = reload_result
    rows += [f"Load on link up: {r['rooms']:,} rooms × {r['lines']} lines "
             f"({r['loaded']:,} loaded) in {r['wall_s'] * 1000:.0f} ms "
             f"({r['cpu_s'] * 1000:.0f} ms of reactor-thread CPU, the reactor held "
             f"{r['stall_s'] * 1000:.0f} ms at most at a time; best of 3)."]
    return "\n".join(rows) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=5000)
    p.add_argument("--lines", type=int, default=2000)
    p.add_argument("--burst", type=int, default=10_000)
    p.add_argument("--rooms", type=int, default=1000)
    p.add_argument("--output")
    args = p.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="chatd-bench-history-")
    proc, port = start_redis(workdir)

    @defer.inlineCallbacks
    def run(reactor):
        cpu = yield cpu_per_line(reactor, port, args.members, args.lines, workdir)
        b = yield burst(reactor, port, args.burst)
        r = yield reload(reactor, port, args.rooms, KEEP)
        text = report(args, cpu, b, r)
        print(text)
        if args.output:
            with open(args.output, "w") as f:
                f.write(text)
    try:
        task.react(lambda reactor: run(reactor))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
