"""
The cluster under load (issue 15), against one node, in one run on this
machine: the big rooms (2000 and 5000 clients x 100 msg/s) on two nodes
sharing one port with ``--reuse-port`` (the kernel spreads the clients)
against one plain node; the latency a line gains crossing nodes (100
clients x 500 msg/s, every sender on node A, every receiver on node B,
against all of them on one node); and memory per logged-in connection on
each node.  Every process's CPU is reported (the generator shares the
machine).  The configurations alternate for ``--rounds`` rounds, and the
best p99 of each is compared.

    .venv/bin/python -m bench.cluster            # full sizes, about 10-15 minutes
    .venv/bin/python -m bench.cluster --quick    # small sizes, a minute or two

Writes bench/results/cluster.json and cluster.md.  Targets: p99 of the
5000 room on 2 nodes <= 0.6x one node's, nothing lost; memory per
logged-in connection per node within 10% of one node's.
"""

import argparse
import atexit
import functools
import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import loadgen, servers, sink
from bench.run import RESULTS, chat_scenario, chatd_tree, log, run_async
from bench.web import best

P99_TARGET = 0.6
EVEN = "2 nodes, as many per node"  # the loggedin run with each node as full as one
MEMORY_TARGET = 1.10
FULL = dict(big="2000,5000", rate=100, duration=10.0, cross_clients=100, cross_rate=500,
            loggedin=5000, senders=20, sample=50, rounds=2)
QUICK = dict(big="300,600", rate=50, duration=3.0, cross_clients=50, cross_rate=200,
             loggedin=500, senders=10, sample=20, rounds=1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.cluster",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    for key, value in FULL.items():
        p.add_argument("--" + key.replace("_", "-"), type=type(value), default=None,
                       help=f"default {value} (quick: {QUICK[key]})")
    p.add_argument("--nice", type=int, default=10,
                   help="run every server process under nice -n N (both configurations), "
                        "so the generator, which shares the cores, is not the one starved")
    p.add_argument("--python-receivers", action="store_true",
                   help="keep every receiver in the Python generator (default: the bulk "
                        "receivers are bench/sink.c, when a C compiler is there)")
    p.add_argument("--only", default="big,cross,loggedin",
                   help="comma-separated of big,cross,loggedin")
    p.add_argument("--cluster-output", default=str(RESULTS / "cluster"),
                   help="results path without suffix (not --output: that is bench.run's)")
    # `make bench` passes bench.run's BENCH_ARGS here too: take --quick and ours.
    args, _ = p.parse_known_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.big = [int(c) for c in str(args.big).split(",") if c]
    args.only = set(args.only.split(","))
    return args


COUNTERS = ("chatd_deliveries_total", "chatd_connection_writes_total",
            "chatd_write_passes_total", "chatd_lines_received_total")


def scrape(port):
    """
    The ``COUNTERS`` of the chatd whose ``--metrics-port`` is ``port``.
    """
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode("utf-8")
    return {s.name: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name in COUNTERS}


def counted(server):
    """
    ``server`` (one chatd, or each node of a ``Cluster``) serving metrics, with
    ``counters()``: ``{process name: COUNTERS}`` now (``chat_scenario``
    reads them around the sending phase).
    """
    ports = {}
    for node in getattr(server, "nodes", [server]):
        ports[node.name] = servers.free_port()
        node.command += ["--metrics-port", str(ports[node.name])]
    server.counters = lambda: {name: scrape(port) for name, port in ports.items()}
    return server


def redis_members(port, key="chatd:0:nodes"):
    """
    How many members the Redis set ``key`` has (a raw RESP ``SCARD``).
    """
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"*2\r\n$5\r\nSCARD\r\n$%d\r\n%s\r\n" % (len(key), key.encode()))
        return int(s.makefile("rb").readline()[1:])


class Cluster:
    """
    ``nodes`` chatd nodes on a ``redis-server`` of their own, sharing one
    data directory; with ``reuse_port`` all on one port.  Stands where a
    ``servers.Server`` stands for ``chat_scenario``: ``port`` (node A's),
    ``ports``, ``pids`` (the nodes, whose RSS and CPU are the server's)
    and ``processes`` (the nodes and Redis, each reported).
    """

    def __init__(self, workdir, redis_binary, extra, nodes=2, reuse_port=True):
        self.workdir = Path(workdir)
        self.name = f"{nodes} nodes" + (" --reuse-port" if reuse_port else "")
        redis_port = servers.free_port()
        self.redis_port = redis_port
        self.redis = servers.Server("redis", [
            redis_binary, "--port", redis_port, "--bind", "127.0.0.1", "--dir", self.workdir,
            "--save", "", "--appendonly", "no"], redis_port, self.workdir)
        shared = servers.free_port() if reuse_port else None
        data = self.workdir / f"data-cluster-{redis_port}"
        url = f"redis://127.0.0.1:{redis_port}/0"
        self.nodes = [
            servers.chatd(self.workdir, name=f"node-{chr(97 + i)}", port=shared, data=data,
                          extra=[*extra, "--redis", url, *(["--reuse-port"] if reuse_port else [])])
            for i in range(nodes)]
        self.ports = [n.port for n in self.nodes]
        self.port = self.ports[0]

    @property
    def pids(self):
        return [n.pid for n in self.nodes]

    @property
    def processes(self):
        return {**{n.name: n.pid for n in self.nodes}, "redis": self.redis.pid}

    def start(self):
        self.redis.start()
        for i, node in enumerate(self.nodes, 1):
            node.start()
            deadline = time.monotonic() + 30
            while redis_members(self.redis_port) < i:  # its heartbeat is in
                if time.monotonic() > deadline or not node.alive():
                    raise RuntimeError(f"{node.name} did not join: {node.log_tail()}")
                time.sleep(0.05)
        return self

    def alive(self):
        return all(p.alive() for p in (*self.nodes, self.redis))

    def stop(self, grace=10):
        for p in (*self.nodes, self.redis):
            p.stop(grace)


class SplitGenerator(loadgen.Generator):
    """
    A ``Generator`` whose last ``senders`` clients connect to ``ports[0]``
    and the rest to ``ports[1]``: every line a receiver gets has crossed
    nodes.
    """

    def __init__(self, host, port, mode="chat", pad=32, ports=(), total=0, senders=0):
        loadgen.Generator.__init__(self, host, port, mode, pad)
        self.ports, self.first_sender = ports, total - senders

    def port_for(self, index):
        return self.ports[0] if index >= self.first_sender else self.ports[-1]


def spec_for(args, kind, clients, rate=None, sample=None, senders=None):
    return dict(kind=kind, clients=clients, rate=rate, senders=senders or args.senders,
                sample=sample or args.sample, duration=args.duration, warmup=1.0,
                login_timeout=180.0, quiet_timeout=60.0, drain_timeout=30.0, window=200,
                concurrency=16, idle_s=2.0)


def measure(server, spec, name):
    """
    One scenario against ``server`` (started and stopped here).
    """
    result = {"server": server.name, "loadavg_before": os.getloadavg()[0]}
    log(f"cluster: {name} on {server.name}")
    try:
        server.start()
    except RuntimeError as e:
        result["error"] = str(e)
        server.stop()
        return result
    try:
        error = run_async(chat_scenario(server, "chat", spec, result), 300)
        if error:
            result["error"] = error
        if not server.alive():
            result["error"] = (result.get("error", "") + " a process died").strip()
    finally:
        server.stop()
    lat = result.get("latency", {})
    log(f"  p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, lost "
        f"{result.get('lost_deliveries')}, per process {per_process_cpu(result)}")
    return result


def per_process_cpu(result):
    return {name: p["cpu_pct"] for name, p in result.get("processes", {}).items()}


def niced(server, nice):
    """
    ``server`` (a ``Server`` or a ``Cluster``) with each process under ``nice``.
    """
    for p in getattr(server, "nodes", [server]) + ([server.redis] if hasattr(server, "redis")
                                                    else []):
        if nice:
            p.command = ["nice", "-n", str(nice), *p.command]
    return server


def run(args, workdir, redis_binary):
    extra = servers.chatd_extra_options(servers.help_text(servers.VENV_BIN / "twistd"))

    def one():
        return niced(counted(servers.chatd(workdir, name="one node", extra=extra)), args.nice)

    def two(reuse_port=True):
        return niced(counted(Cluster(workdir, redis_binary, extra, reuse_port=reuse_port)),
                     args.nice)

    results = {"rounds": args.rounds, "quick": args.quick, "chatd_tree": chatd_tree(),
               "nice": args.nice,
               "scenarios": {}}
    plans = []
    if "big" in args.only:
        for clients in args.big:
            plans.append((f"big{clients}", spec_for(args, "traffic", clients, args.rate),
                          (("one node", one), ("2 nodes", two))))
    if "cross" in args.only:
        n, senders = args.cross_clients, args.senders
        # Only the receivers sample: with every sender on node A, each
        # sampled line crossed nodes (on one node, the same clients).
        spec = spec_for(args, "traffic", n, args.cross_rate, sample=n - senders)
        plans.append(("cross", spec, (("one node", one), ("2 nodes", lambda: two(False)))))
        results["cross_spec"] = {"senders_on": "node-a", "receivers_on": "node-b"}
    if "loggedin" in args.only:
        # The same clients in all, then as many per node as the one node has.
        plans.append(("loggedin", spec_for(args, "loggedin", args.loggedin),
                      (("one node", one), ("2 nodes", two),
                       (EVEN, two, 2 * args.loggedin))))
    if not args.python_receivers and sink.available():
        results["receivers"] = "bench/sink.c (C) but the samplers and senders"
        for name, spec, _ in plans:
            if name != "cross":
                spec["generator"] = functools.partial(sink.SinkGenerator,
                                                      senders=spec["senders"])
    else:
        results["receivers"] = "the Python generator"
    for name, spec, configs in plans:
        entry = results["scenarios"].setdefault(name, {"spec": spec, "runs": {}})
        rounds = 1 if name == "loggedin" else args.rounds
        for r in range(rounds):
            order = configs if r % 2 == 0 else configs[::-1]  # alternate: the same load
            for label, make, *clients in order:
                server = make()
                run_spec = dict(spec, clients=clients[0]) if clients else spec
                if name == "cross" and isinstance(server, Cluster):
                    run_spec = dict(spec, generator=functools.partial(
                        SplitGenerator, ports=server.ports, total=spec["clients"],
                        senders=spec["senders"]))
                entry["runs"].setdefault(label, []).append(measure(server, run_spec, name))
                write(results, args)
    summarize(results)
    write(results, args)
    return results


def per_node_bytes(result):
    """
    ``{node: bytes per connection it holds}`` of a logged-in run.
    """
    out = {}
    for name, p in result.get("processes", {}).items():
        if name != "redis" and p["sockets_opened"] > 0:
            out[name] = round(p["rss_growth_bytes"] / p["sockets_opened"])
    return out


def summarize(results):
    for name, entry in results["scenarios"].items():
        runs = entry["runs"]
        if name == "loggedin":
            one = runs.get("one node", [None])[0]
            base = per_node_bytes(one).get("one node") if one else None
            for label in ("2 nodes", EVEN):
                nodes = per_node_bytes(runs.get(label, [{}])[0])
                entry.setdefault("bytes_per_conn", {"one node": base})[label] = nodes
                if base and nodes:
                    entry.setdefault("ratio", {})[label] = round(max(nodes.values()) / base, 2)
            if entry.get("ratio"):
                entry["target_met"] = {k: v <= MEMORY_TARGET for k, v in entry["ratio"].items()}
            continue
        one, two = best(runs.get("one node", [])), best(runs.get("2 nodes", []))
        if one and two:
            entry["p99_ratio"] = round(two["latency"]["p99_ms"] / one["latency"]["p99_ms"], 2)
            entry["p50_ratio"] = round(two["latency"]["p50_ms"] / max(one["latency"]["p50_ms"],
                                                                      1e-3), 2)
            entry["lost"] = [r.get("lost_deliveries") for r in runs.get("2 nodes", [])]
            if name == "big5000":
                entry["target_met"] = entry["p99_ratio"] <= P99_TARGET and all(
                    x == 0 for x in entry["lost"])


def batching(result):
    """
    ``(writes, lines per write)`` in the sending phase, every node summed.
    """
    counters = result.get("counters") or {}
    writes = sum(c.get("chatd_connection_writes_total", 0) for c in counters.values())
    deliveries = sum(c.get("chatd_deliveries_total", 0) for c in counters.values())
    return (int(writes), round(deliveries / writes, 2)) if writes else (None, None)


def _machine(result):
    m = result.get("machine_cpu") or {}
    if not m:
        return "-"
    return f"{m['busy_pct']} ({m['system_pct']}, {m['softirq_pct']})"


def _f(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results):
    out = [f"# The cluster against one node ({results['rounds']} rounds, alternating; "
           f"chatd tree {results['chatd_tree']})", "",
           f"Servers under `nice -n {results.get('nice')}`; receivers: "
           f"{results.get('receivers')}.", ""]
    for name, entry in results["scenarios"].items():
        spec = entry["spec"]
        if name == "loggedin":
            out += [f"## Memory per logged-in connection ({spec['clients']} clients, "
                    f"{2 * spec['clients']} for {EVEN}; `/nick` answered, 2 s idle)", "",
                    "| server | process | connections | RSS growth MiB | bytes per connection |",
                    "| --- | --- | --- | --- | --- |"]
            for label, runs in entry["runs"].items():
                for pname, p in runs[0].get("processes", {}).items():
                    if pname == "redis":
                        continue
                    per = (round(p["rss_growth_bytes"] / p["sockets_opened"])
                           if p["sockets_opened"] > 0 else "-")
                    out.append(f"| {label} | {pname} | {p['sockets_opened']} | "
                               f"{p['rss_growth_mib']} | {per} |")
            out += ["", f"Largest per node / one node: {entry.get('ratio', '-')} "
                        f"(target <= {MEMORY_TARGET}); met: {entry.get('target_met')}.  "
                        f"With {EVEN}, each node holds as many connections as the one "
                        f"node, and as many users of the other node.", ""]
            continue
        title = ("Crossing nodes: every sender on node A, every receiver on node B"
                 if name == "cross" else "Big room")
        out += [f"## {title}: {spec['clients']} clients x {spec['rate']} msg/s, "
                f"{spec['duration']} s", "",
                "| server | round | p50 ms | p99 ms | max ms | lost | deliveries/s "
                "| writes | lines per write | CPU % per process | generator CPU % "
                "| machine busy % (system, softirq) | load avg before |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
                "| --- |"]
        for label, runs in entry["runs"].items():
            for i, r in enumerate(runs, 1):
                lat = r.get("latency") or {}
                cpus = ", ".join(f"{k} {v}" for k, v in per_process_cpu(r).items())
                writes, per_write = batching(r)
                out.append(
                    f"| {label} | {i} | {_f(lat.get('p50_ms'), 2)} | {_f(lat.get('p99_ms'))} | "
                    f"{_f(lat.get('max_ms'))} | {r.get('lost_deliveries', '-')} | "
                    f"{r.get('deliveries_per_s', '-')} | {writes if writes else '-'} | "
                    f"{per_write if per_write else '-'} | {cpus} | "
                    f"{r.get('generator_cpu_pct', '-')} | {_machine(r)} | "
                    f"{r.get('loadavg_before', 0):.1f} |"
                    + (f" {r['error']}" if r.get("error") else ""))
        line = (f"Best p99, 2 nodes / one node: {entry.get('p99_ratio', '-')}; "
                f"best p50: {entry.get('p50_ratio', '-')}; lost on 2 nodes: "
                f"{entry.get('lost', '-')}")
        if "target_met" in entry:
            line += f"; target p99 <= {P99_TARGET}x: met: {entry['target_met']}"
        out += ["", line, ""]
    return "\n".join(out) + "\n"


def write(results, args):
    path = Path(args.cluster_output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(markdown(results))


def main(argv=None):
    args = parse_args(argv)
    servers.raise_nofile()
    atexit.register(servers.kill_all)
    redis_binary = servers.debian_binary("redis-server", "redis-server", log=log)
    if redis_binary is None:
        raise SystemExit("bench.cluster needs redis-server (Debian's redis-server package)")
    workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-cluster-"))
    try:
        results = run(args, workdir, redis_binary)
        print(markdown(results))
    finally:
        servers.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
