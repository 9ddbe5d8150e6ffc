"""
The rooms' history under load (issue 14): the big-room scenarios with
history off (``--history 0``) and on (the default, 50 lines in SQLite),
in the same run, rounds in alternating order (off, on, on, off, ...;
``--history-rounds``, default 2), p99 side by side (target: the median over
the rounds of on ÷ off within 10%); the reactor thread's CPU per line both
ways; and a 10,000-line burst into a room with history on, which must lose
nothing and leave the history holding the last lines in order.
"""

import argparse
import asyncio
import os
import time

from zope.interface import implementer

from bench import servers
from chatd.hub import IChatClient

BURST = 10_000
RECEIVERS = 10
KEEP = 50  # chatd's default --history
PAGE = 500  # what /history shows at most
VARIANTS = [("history off", ["--history", "0"]), ("history on", ["--history", str(KEEP)])]


@implementer(IChatClient)
class Null:
    """
    A member that takes every line and does nothing with it.
    """

    name = None
    rooms = ()

    def deliver(self, data):
        pass


def run(ctx, results, chat_specs, measure):
    """
    Fill ``results["history"]``: the big rooms both ways, then the burst.
    """
    args = ctx.args
    entry = results["history"] = {"big": {}, "burst": {}}
    specs = chat_specs(argparse.Namespace(**dict(vars(args), only=["big"])))
    for name, spec in specs:
        entry["big"][name] = {"spec": spec, "servers": {}, "rounds": []}
        for i in range(args.history_rounds):  # off, on, on, off, ...: drift cancels
            order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
            runs = {}
            for variant, extra in order:
                server = servers.chatd(ctx.workdir, name="chatd",
                                       extra=[*ctx.chatd_extra, *extra])
                result = runs[variant] = {}
                measure(ctx, f"{name} ({variant})", spec, variant, server, "chat", result)
            entry["big"][name]["rounds"].append(runs)
        for variant, _ in VARIANTS:  # the best p99 of each, as the report shows
            entry["big"][name]["servers"][variant] = min(
                (runs[variant] for runs in entry["big"][name]["rounds"]),
                key=lambda r: (r.get("latency") or {}).get("p99_ms", float("inf")))
    entry["cpu_per_line"] = cpu_per_line(max(args.big_clients), ctx.workdir)
    server = servers.chatd(ctx.workdir, name="chatd-burst", extra=[*ctx.chatd_extra])
    server.start()
    try:
        entry["burst"] = asyncio.run(asyncio.wait_for(burst(server.port), 300))
    except Exception as e:  # noqa: BLE001 - a failed run is reported, not raised
        entry["burst"] = {"error": repr(e)}
    finally:
        server.stop()


def cpu_per_line(members, workdir, lines=2000, rounds=3):
    """
    The reactor thread's CPU time per line said into a room of ``members``
    (null clients, in this process), history off and on (queued for the
    SQLite store, as chatd does): the cost history adds where latency is
    made, without the scheduling noise of a shared machine.  Best of
    ``rounds``, alternating.
    """
    from twisted.internet.testing import MemoryReactorClock

    from chatd.history import SQLiteHistory
    from chatd.hub import Hub

    def per_line(keep, store):
        hub = Hub(history=keep, store=store)
        clients = [Null() for _ in range(members)]
        for c in clients:
            hub.connect(c)
        start = time.process_time()
        for i in range(lines):
            hub.say(clients[0], f"line {i} T{time.monotonic_ns()}")
        return (time.process_time() - start) / lines

    off, on = [], []
    for _ in range(rounds):
        off.append(per_line(0, None))
        on.append(per_line(KEEP, SQLiteHistory.in_directory(
            os.path.join(workdir, "cpu-per-line"), MemoryReactorClock(), PAGE)))
    return {"members": members, "off_us": round(min(off) * 1e6, 1),
            "on_us": round(min(on) * 1e6, 1), "ratio": round(min(on) / min(off), 3)}


async def _client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    await reader.readline()  # the greeting
    return reader, writer


async def _until(reader, prefix):
    """
    The lines up to and including the first that starts with ``prefix``.
    """
    lines = []
    while True:
        line = (await reader.readline()).decode().rstrip("\r\n")
        lines.append(line)
        if line.startswith(prefix):
            return lines


async def burst(port):
    """
    One sender says BURST lines into #burst as fast as it can; RECEIVERS
    count them; then a newcomer checks the replay and ``/history``.
    """
    clients = [await _client(port) for _ in range(RECEIVERS + 1)]
    for reader, writer in clients:
        writer.write(b"/join #burst\n")
        await writer.drain()
        await _until(reader, "*** you are in #burst")
    sender = clients[0][1]
    tag = os.urandom(4).hex()

    async def count(reader):
        got = 0
        while got < BURST:
            line = await reader.readline()
            if tag.encode() in line:
                got += 1
        return got

    counters = [asyncio.ensure_future(count(r)) for r, _ in clients[1:]]
    start = time.monotonic()
    for i in range(BURST):
        sender.write(f"{tag} {i}\n".encode())
        if i % 500 == 499:
            await sender.drain()
    await sender.drain()
    try:
        received = await asyncio.wait_for(asyncio.gather(*counters), 120)
    except asyncio.TimeoutError:
        received = [c.result() if c.done() else None for c in counters]
    seconds = time.monotonic() - start

    reader, writer = await _client(port)
    writer.write(b"/join #burst\n")
    replay = [line for line in await _until(reader, "*** you are in #burst")
              if line.startswith("= [")]
    writer.write(f"/history #burst {PAGE}\n".encode())
    page = [line for line in await _until(reader, "- end of history of #burst")
            if line.startswith("= [")]
    expected = [f"{tag} {i}" for i in range(BURST)]

    def numbers(lines):
        return [line.rsplit("> ", 1)[1] for line in lines]

    for _, w in clients + [(reader, writer)]:
        w.close()
    return {
        "lines": BURST, "receivers": RECEIVERS, "seconds": round(seconds, 2),
        "lines_per_s": round(BURST / seconds),
        "lost_deliveries": sum(BURST - (r or 0) for r in received),
        "replay_holds_last_in_order": numbers(replay) == expected[-KEEP:],
        "replayed": len(replay),
        "history_page_holds_last_in_order": numbers(page) == expected[-PAGE:],
        "history_page": len(page),
    }


def _median_ratio(rounds):
    """
    The median over rounds of p99 on ÷ p99 off, each pair run back to back
    (so a load that comes and goes on a shared machine hits both alike).
    """
    ratios = []
    for runs in rounds:
        p99 = [(runs.get(v, {}).get("latency") or {}).get("p99_ms") for v, _ in VARIANTS]
        if all(p99):
            ratios.append(p99[1] / p99[0])
    if not ratios:
        return None
    ratios.sort()
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2


def markdown(entry):
    """
    The big rooms with history off and on, and the burst.
    """
    head = ["scenario", "best p99 off (ms)", "best p99 on (ms)",
            "on ÷ off, median of the rounds", "within 10%", "lost off / on",
            "server CPU off / on (%)", "p99 of each round, off / on (ms)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, big in entry.get("big", {}).items():
        off, on = (big["servers"].get(v) or {} for v, _ in VARIANTS)
        p_off = (off.get("latency") or {}).get("p99_ms")
        p_on = (on.get("latency") or {}).get("p99_ms")
        ratio = _median_ratio(big.get("rounds", []))
        spec = big["spec"]
        lines.append("| " + " | ".join([
            f"{name}: {spec['clients']:,} clients × {spec['rate']} msg/s",
            str(p_off), str(p_on), "—" if ratio is None else f"{ratio:.2f}×",
            "—" if ratio is None else ("met" if ratio <= 1.1 else "**missed**"),
            f"{off.get('lost_deliveries')} / {on.get('lost_deliveries')}",
            f"{off.get('server_cpu_pct')} / {on.get('server_cpu_pct')}",
            "; ".join(" / ".join(str((runs.get(v, {}).get("latency") or {}).get("p99_ms"))
                                 for v, _ in VARIANTS) for runs in big.get("rounds", [])),
        ]) + " |")
        errors = [f"{v}: {r['error']}" for v, r in (("off", off), ("on", on)) if r.get("error")]
        if errors:
            lines.append("| | errors: " + "; ".join(errors) + " |" + " |" * (len(head) - 2))
    cpu = entry.get("cpu_per_line")
    if cpu:
        lines += ["", f"Reactor-thread CPU per line said into a room of {cpu['members']:,} "
                      f"(in process, null clients, best of 3): history off {cpu['off_us']} µs, "
                      f"on {cpu['on_us']} µs ({cpu['ratio']:.3f}×)."]
    b = entry.get("burst") or {}
    if b.get("error"):
        lines += ["", f"Burst: error {b['error']}"]
    elif b:
        lines += ["", f"Burst: {b['lines']:,} lines into a room with history on, "
                      f"{b['receivers']} receivers: {b['seconds']} s ({b['lines_per_s']:,} "
                      f"lines/s), {b['lost_deliveries']} deliveries lost; the replay on join "
                      f"holds the last {b['replayed']} in order: "
                      f"{'yes' if b['replay_holds_last_in_order'] else '**no**'}; "
                      f"/history {PAGE} holds the last {b['history_page']} in order: "
                      f"{'yes' if b['history_page_holds_last_in_order'] else '**no**'}."]
    return "\n".join(lines)
