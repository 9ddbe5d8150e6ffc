"""
The web client under load (issue 16), against one chatd serving TCP and
``--web-port``: a big room all on TCP, then the same room with half of its
clients (and of its senders and latency samplers) on the WebSocket; and
the memory an idle WebSocket connection costs beside an idle TCP one.

    .venv/bin/python -m bench.web            # 2000 clients x 100 msg/s, 2000 idle
    .venv/bin/python -m bench.web --quick    # 300 clients, under a minute

Writes bench/results/web.json and web.md.  Target: the mixed room's p99
within 1.5x of the all-TCP room's, nothing lost.  The two rooms alternate
for ``--rounds`` rounds and the best p99 of each is compared (the machine
may be shared: the load average before each run is recorded).
"""

import argparse
import asyncio
import atexit
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from bench import servers
from bench.procstat import rss
from bench.run import RESULTS, chat_scenario, chatd_tree, log, mib, run_async
from bench.wsload import MixedGenerator

P99_TARGET = 1.5
FULL = dict(clients=2000, rate=100, duration=10.0, idle=2000, senders=20, sample=50, rounds=3)
QUICK = dict(clients=300, rate=50, duration=3.0, idle=300, senders=10, sample=20, rounds=1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    for key, value in FULL.items():
        p.add_argument("--" + key, type=type(value), default=None,
                       help=f"default {value} (quick: {QUICK[key]})")
    p.add_argument("--web-output", default=str(RESULTS / "web"),
                   help="results path without suffix (not --output: that is bench.run's)")
    # `make bench` passes bench.run's BENCH_ARGS here too: take --quick and ours.
    args, _ = p.parse_known_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def web_chatd(workdir):
    web_port = servers.free_port()
    extra = servers.chatd_extra_options(servers.help_text(servers.VENV_BIN / "twistd"))
    server = servers.chatd(workdir, extra=[*extra, "--web-port", web_port,
                                           "--web-interface", "127.0.0.1"])
    return server, web_port


def room(args, workdir, share):
    """
    One big-room run with ``share`` of the clients on the WebSocket.
    """
    server, web_port = web_chatd(workdir)
    spec = dict(kind="traffic", clients=args.clients, rate=args.rate, senders=args.senders,
                sample=args.sample, duration=args.duration, warmup=1.0, login_timeout=180.0,
                quiet_timeout=60.0, drain_timeout=30.0, window=200, concurrency=16,
                generator=functools.partial(MixedGenerator, web_port=web_port, web_share=share))
    result = {"websocket_share": share, "loadavg_before": os.getloadavg()[0]}
    server.start()
    try:
        error = run_async(chat_scenario(server, "chat", spec, result), 300)
        if error:
            result["error"] = error
    finally:
        server.stop()
    return result


async def idle_connections(server, gen, count):
    before = rss(server.pid)
    login = await gen.connect(count, login="greeting", concurrency=16, timeout=180)
    await gen.quiet(timeout=60)
    after = rss(server.pid)
    gen.close()
    return {"connections": login["logged_in"], "rss_mib": mib(after),
            "bytes_per_conn": round((after - before) / max(1, login["logged_in"]))}


def idle(args, workdir, share):
    server, web_port = web_chatd(workdir)
    server.start()
    result = {}
    try:
        gen = MixedGenerator("127.0.0.1", server.port, web_port=web_port, web_share=share)

        async def run():
            result.update(await idle_connections(server, gen, args.idle))
        error = run_async(run(), 300)
        if error:
            result["error"] = error
    finally:
        server.stop()
    return result


def _ms(value):
    return "-" if value is None else f"{value:.1f}"


def best(runs):
    """
    The run with the lowest p99 (``None`` when none measured one).
    """
    measured = [r for r in runs if r.get("latency", {}).get("p99_ms") is not None]
    return min(measured, key=lambda r: r["latency"]["p99_ms"]) if measured else None


def markdown(results):
    lines = [f"# Web client under load ({results['clients']} clients x "
             f"{results['rate']} msg/s, {results['duration']} s, "
             f"{results['rounds']} rounds)", "",
             "| room | round | WebSocket clients | deliveries/s | lost | p50 ms | p99 ms "
             "| max ms | server CPU % | load avg before |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, runs in results["rooms"].items():
        for i, r in enumerate(runs, 1):
            lat = r.get("latency", {})
            lines.append(
                f"| {name} | {i} | {r.get('login', {}).get('websocket', '-')} | "
                f"{r.get('deliveries_per_s', '-')} | {r.get('lost_deliveries', '-')} | "
                f"{_ms(lat.get('p50_ms'))} | {_ms(lat.get('p99_ms'))} | "
                f"{_ms(lat.get('max_ms'))} | {r.get('server_cpu_pct', '-')} | "
                f"{r.get('loadavg_before', 0):.1f} |" + (
                    f" {r['error']}" if r.get("error") else ""))
    ratio = results.get("p99_ratio")
    lost = [r.get("lost_deliveries") for r in results["rooms"]["mixed"]]
    lines += ["", f"Best p99, mixed / all-TCP: {ratio if ratio is not None else '-'} "
              f"(target <= {P99_TARGET}); lost deliveries in the mixed room: {lost}; "
              f"target met: {results.get('p99_target_met')}", "",
              "| idle connections | count | server RSS MiB | bytes per connection |",
              "| --- | --- | --- | --- |"]
    for name, r in results["idle"].items():
        lines.append(f"| {name} | {r.get('connections', '-')} | {r.get('rss_mib', '-')} | "
                     f"{r.get('bytes_per_conn', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    servers.raise_nofile()
    atexit.register(servers.kill_all)
    workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-web-"))
    try:
        results = {"clients": args.clients, "rate": args.rate, "duration": args.duration,
                   "rounds": args.rounds, "quick": args.quick, "chatd_tree": chatd_tree(),
                   "rooms": {"all-tcp": [], "mixed": []}, "idle": {}}
        for i in range(args.rounds):
            for name, share in (("all-tcp", 0.0), ("mixed", 0.5)):
                log(f"web: {name} room, {args.clients} clients, round {i + 1}")
                results["rooms"][name].append(room(args, workdir, share))
        for name, share in (("tcp", 0.0), ("websocket", 1.0)):
            log(f"web: {args.idle} idle {name} connections")
            results["idle"][name] = idle(args, workdir, share)
        tcp, mixed = best(results["rooms"]["all-tcp"]), best(results["rooms"]["mixed"])
        if tcp and mixed:
            results["p99_ratio"] = round(mixed["latency"]["p99_ms"] / tcp["latency"]["p99_ms"], 2)
            results["p99_target_met"] = results["p99_ratio"] <= P99_TARGET and all(
                r.get("lost_deliveries") == 0 for r in results["rooms"]["mixed"])
        out = Path(args.web_output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        out.with_suffix(".md").write_text(markdown(results))
        print(markdown(results))
    finally:
        servers.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
