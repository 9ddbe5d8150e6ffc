"""
The hot-path cost of ``--metrics-port`` (issue 18), measured in process so
the machine's other load hardly matters: a chat line from one member of a
room of N goes through ``ChatProtocol.lineReceived``, the hub's fan-out
and the write coalescer, to transports that drop the bytes; the same
room with metrics off (``NoMetrics``) and on (``Metrics``), alternating,
best of the rounds.

    .venv/bin/python -m bench.metrics_cost [--members 2000] [--lines 200] [--rounds 21]
"""

import argparse
import time

from prometheus_client import CollectorRegistry
from twisted.internet import task
from twisted.internet.testing import StringTransport

from chatd.hub import Hub
from chatd.limits import Limits
from chatd.metrics import NO_METRICS, Metrics
from chatd.factory import ChatFactory
from chatd.store import FileStore


class DropTransport(StringTransport):
    def write(self, data):
        pass


def room(members, metrics, data_dir):
    clock = task.Clock()
    factory = ChatFactory(Hub(presence_limit=10), FileStore(data_dir), clock,
                          server_name="bench", limits=Limits(rate=0, max_conns=0,
                                                             max_conns_per_ip=0),
                          coalesce_writes=True, metrics=metrics)
    protocols = []
    for _ in range(members):
        p = factory.buildProtocol(None)
        p.makeConnection(DropTransport())
        protocols.append(p)
    clock.advance(0)
    return protocols[0], clock


def seconds_per_line(sender, clock, lines):
    start = time.process_time()  # CPU time: less swayed by other processes
    for i in range(lines):
        sender.lineReceived(b"hello everyone, this is line %d" % i)
        clock.advance(0)  # the coalescer's end of pass: one write per member
    return (time.process_time() - start) / lines


def main(argv=None):
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=2000)
    p.add_argument("--lines", type=int, default=200)
    p.add_argument("--rounds", type=int, default=21)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sender, clock = room(args.members, NO_METRICS, tmp)
        metrics = Metrics(CollectorRegistry())
        metrics.watch(sender.factory)
        best = {"off": float("inf"), "on": float("inf")}
        for _ in range(args.rounds):
            for name, chosen in (("off", NO_METRICS), ("on", metrics)):
                sender.factory.metrics = chosen  # the same room, metrics switched
                best[name] = min(best[name], seconds_per_line(sender, clock, args.lines))
    off_us, on_us = best["off"] * 1e6, best["on"] * 1e6
    print(f"one line to a room of {args.members}, best of {args.rounds} rounds "
          f"of {args.lines} lines:")
    print(f"  metrics off: {off_us:8.1f} µs per line ({off_us * 1000 / args.members:.0f} ns "
          f"per recipient)")
    print(f"  metrics on:  {on_us:8.1f} µs per line ({on_us * 1000 / args.members:.0f} ns "
          f"per recipient)")
    print(f"  on / off:    {on_us / off_us:.3f} (target ≤ 1.05)")


if __name__ == "__main__":
    main()
