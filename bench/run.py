"""
Run the chatd benchmarks against the references, in one run on this machine.

    .venv/bin/python -m bench.run            # everything (about 20-30 minutes)
    .venv/bin/python -m bench.run --quick    # small sizes, about 2 minutes
    .venv/bin/python -m bench.run --only latency,storm --servers chatd,floor

Writes bench/results/latest.json (raw) and bench/results/latest.md (tables);
the ``profile`` scenario also bench/results/latest-profile.txt.  Every scenario has a
timeout and every process started here is killed at the end.
"""

import argparse
import asyncio
import atexit
import json
import os
import platform
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import files, loadgen, report, servers
from bench.procstat import cpu, footprint, growth, machine, machine_share, rss
from chatd.grammar import parse_size

RESULTS = servers.BENCH / "results"
SCENARIOS = ["latency", "throughput", "big", "idle", "loggedin", "storm", "files", "profile",
             "history"]
CHAT_SERVERS = ["chatd", "chatd-pypy", "floor", "dfloor", "ngircd"]

FULL = dict(latency_clients=100, latency_rate=500, throughput_clients=100, window=200,
            big_clients="2000,5000", big_rate=100, idle_clients=10000, loggedin_clients=5000,
            storm_clients=5000,
            file_size="512M", rounds=3, duration=10.0, senders=20, sample=50, warmup=1.0,
            profile_clients=2000, scenario_timeout=300.0, login_timeout=180.0,
            storm_timeout=60.0, history_rounds=2)
QUICK = dict(latency_clients=50, latency_rate=200, throughput_clients=50, window=300,
             big_clients="300,600", big_rate=50, idle_clients=1000, loggedin_clients=500,
             storm_clients=500,
             file_size="32M", rounds=2, duration=3.0, senders=10, sample=20, warmup=0.5,
             profile_clients=300, scenario_timeout=60.0, login_timeout=30.0,
             storm_timeout=15.0, history_rounds=2)


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def mib(n):
    return round(n / 2**20, 1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help=f"comma-separated scenarios of {','.join(SCENARIOS)}")
    p.add_argument("--servers", default=",".join(CHAT_SERVERS),
                   help="comma-separated of chatd,chatd-pypy,floor,dfloor,floor-pypy,ngircd")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get/pip install ngircd or PyPy when missing")
    p.add_argument("--presence-limit", type=int, default=None,
                   help="pass --presence-limit N to chatd (when its --help lists it)")
    p.add_argument("--connect-window", type=int, default=16,
                   help="connects in flight while setting up a scenario (the storm "
                        "connects all at once); keeps small listen backlogs from "
                        "dropping SYNs, which is not what those scenarios measure")
    p.add_argument("--output", default=str(RESULTS / "latest"),
                   help="results path without suffix (.json and .md are written)")
    for key, value in FULL.items():
        p.add_argument("--" + key.replace("_", "-"), type=type(value), default=None,
                       help=f"default {value} (quick: {QUICK[key]})")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.only = [s for s in args.only.split(",") if s]
    args.servers = [s for s in args.servers.split(",") if s]
    args.big_clients = [int(c) for c in str(args.big_clients).split(",") if c]
    return args


# --- chat scenarios ----------------------------------------------------------


async def chat_scenario(server, mode, spec, result):
    """
    Run one chat scenario against a started server, filling ``result`` as it
    goes (so a timeout keeps what was measured).
    """
    make_generator = spec.get("generator", loadgen.Generator)  # bench/web.py: a mixed one
    gen = make_generator("127.0.0.1", server.port, mode=mode, pad=spec.get("pad", 32))
    pids = getattr(server, "pids", None) or [server.pid]  # a cluster's: its nodes

    def server_rss():
        return sum(rss(pid) for pid in pids)

    def server_cpu():
        return sum(cpu(pid) for pid in pids)

    def generator_cpu():  # bench/sink.py: its C receivers' too
        return time.process_time() + sum(cpu(pid) for pid in getattr(gen, "helper_pids", ()))
    kind = spec["kind"]
    clients = spec["clients"]
    try:
        rss0 = server_rss()
        result["rss_start_mib"] = mib(rss0)
        before, t_before = footprint(server), time.monotonic()
        if kind in ("idle", "loggedin", "storm"):
            login = "greeting" if kind == "idle" else "full"
            concurrency = spec.get("concurrency")
            result["login"] = await gen.connect(clients, login=login, concurrency=concurrency,
                                                timeout=spec["login_timeout"])
            result["settle_s"] = await gen.quiet(timeout=spec["quiet_timeout"])
            if kind == "loggedin":
                await asyncio.sleep(spec["idle_s"])  # timers and buffers settle too
            rss1 = server_rss()
            result["processes"] = growth(before, footprint(server),
                                         time.monotonic() - t_before)
            result["rss_mib"] = mib(rss1)
            result["bytes_per_conn"] = round((rss1 - rss0) / max(1, result["login"]["logged_in"]))
            result["lost_connections"] = gen.lost_connections
            return
        senders_n = min(spec["senders"], clients - 1)
        flat = spec.get("rate") is None
        oper = set(range(clients - senders_n, clients)) if mode == "irc" else set()
        result["login"] = await gen.connect(
            clients, parse=spec["sample"], probe=flat, concurrency=spec.get("concurrency"),
            login=spec.get("login", "full"), timeout=spec["login_timeout"], oper=oper)
        missing = clients - result["login"]["logged_in"]
        if missing:
            # A server that dropped a few clients while they logged in (ngircd
            # does, past its send queue, in a 5000-client JOIN flood) is
            # measured with the rest, and says so; anything else stops here.
            # (Dropped, or never connected: a connect timed out.)
            lost = [c for c in gen.clients if c.closed or c.transport is None]
            if len(lost) != missing or missing > clients // 100:
                result["error"] = "not every client logged in"
                return
            result["error"] = f"{missing} clients dropped while logging in: measured with the rest"
            gen.clients = [c for c in gen.clients if not (c.closed or c.transport is None)]
            clients = len(gen.clients)
        result["settle_s"] = await gen.quiet(timeout=spec["quiet_timeout"])
        result["rss_idle_mib"] = mib(server_rss())
        senders = gen.clients[clients - senders_n:]
        peak = [server_rss()]

        async def sample_rss():
            while True:
                await asyncio.sleep(0.25)
                peak[0] = max(peak[0], server_rss())

        sampler = asyncio.ensure_future(sample_rss())
        spy = None
        if spec.get("py_spy"):
            spy = subprocess.Popen(
                [str(servers.VENV_BIN / "py-spy"), "record", "--pid", str(pids[0]), "--duration",
                 str(max(1, int(spec["duration"]))), "--rate", "250", "--nonblocking",
                 "--format", "raw", "-o", spec["py_spy"]],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers._started.append(spy)
        counters = getattr(server, "counters", None)  # bench/cluster.py: from /metrics
        counted = counters() if counters else None
        before, whole = footprint(server), machine()
        cpu0, gcpu0, t0 = server_cpu(), generator_cpu(), time.monotonic()
        gen.measure_from = time.monotonic_ns() + int(spec["warmup"] * loadgen.NS)
        gen.latencies = []
        gen.recording = True
        if flat:
            sent = await gen.send_flat_out(senders, spec["duration"], spec["window"])
        else:
            sent = await gen.send_at_rate(senders, spec["rate"], spec["duration"])
        t_sent = time.monotonic()
        total_sent = sum(c.sent for c in gen.clients)
        expected = total_sent * (clients - 1)
        received = await gen.drain(expected, idle=3.0, timeout=spec["drain_timeout"])
        t_end = max(gen.last_rx, t_sent)
        cpu1, gcpu1 = server_cpu(), generator_cpu()
        result["processes"] = growth(before, footprint(server), t_end - t0)
        result["machine_cpu"] = machine_share(whole, machine(), t_end - t0)
        if counted is not None:
            result["counters"] = {name: {k: v - counted[name][k] for k, v in now.items()}
                                  for name, now in counters().items()}
        gen.recording = False
        sampler.cancel()
        if spy is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, spy.wait, 60)
            except subprocess.TimeoutExpired:
                spy.kill()
        wall = t_end - t0
        result.update({
            "senders": senders_n,
            "messages_sent": total_sent,
            "send_seconds": round(t_sent - t0, 3),
            "messages_per_s": round(total_sent / (t_sent - t0), 1),
            "expected_deliveries": expected,
            "received_deliveries": received,
            "lost_deliveries": expected - received,
            "deliveries_per_s": round(received / wall, 1) if wall > 0 else None,
            "latency": loadgen.latency_summary(gen.latencies),
            "server_cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1) if wall > 0 else None,
            "generator_cpu_pct": round(100 * (gcpu1 - gcpu0) / wall, 1) if wall > 0 else None,
            "server_rss_peak_mib": mib(peak[0]),
            "lost_connections": gen.lost_connections,
        })
        result["send_calls"] = sent
    finally:
        gen.close()
        await asyncio.sleep(0.2)


def run_async(coro, timeout):
    """
    Run ``coro`` on a fresh (uv)loop with an overall timeout.
    """
    async def bounded():
        try:
            await asyncio.wait_for(coro, timeout)
            return None
        except asyncio.TimeoutError:
            return f"timed out after {timeout:.0f}s"

    try:
        import uvloop
        return uvloop.run(bounded()) if hasattr(uvloop, "run") else _run_with_policy(bounded)
    except ImportError:
        return asyncio.run(bounded())


def _run_with_policy(bounded):
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(bounded())


class Context:
    """
    What the run knows about this machine: which servers can be started.
    """

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.notes = []
        help_output = servers.help_text(servers.VENV_BIN / "twistd")
        self.chatd_help = help_output
        self.chatd_extra = servers.chatd_extra_options(help_output, args.presence_limit)
        if args.presence_limit is not None and "--presence-limit" not in help_output:
            self.notes.append("chatd has no --presence-limit option yet: run without it")
        self.pypy = None
        if any("pypy" in s for s in args.servers) or "files" in args.only:
            self.pypy = servers.pypy_python(install=not args.no_install, log=log)
            if self.pypy is None:
                self.notes.append("PyPy (Debian's pypy3 with Twisted) is not available: "
                                  "no PyPy column")
        self.ngircd = None
        if "ngircd" in args.servers:
            self.ngircd = servers.ngircd_binary(install=not args.no_install, log=log)
            if self.ngircd is None:
                self.notes.append("ngircd is not installed and could not be installed: "
                                  "no ngircd column")

    def chat_server(self, kind):
        w = self.workdir
        if kind == "chatd":
            return servers.chatd(w, extra=self.chatd_extra), "chat"
        if kind == "chatd-metrics":  # the same chatd, counting for Prometheus
            return servers.chatd(w, name="chatd-metrics", extra=[
                *self.chatd_extra, "--metrics-port", str(servers.free_port())]), "chat"
        if kind == "chatd-pypy" and self.pypy:
            return servers.chatd(w, python_bin=self.pypy, name="chatd-pypy",
                                 extra=self.chatd_extra), "chat"
        if kind == "floor":
            return servers.twisted_floor(w), "chat"
        if kind == "dfloor":
            return servers.direct_floor(w), "chat"
        if kind == "floor-b50":
            return servers.twisted_floor(w, name="floor-b50", backlog=50), "chat"
        if kind == "floor-pypy" and self.pypy:
            return servers.twisted_floor(w, python_bin=self.pypy, name="floor-pypy"), "chat"
        if kind == "ngircd" and self.ngircd:
            return servers.ngircd(w, self.ngircd), "irc"
        return None, None


def chat_specs(args):
    common = dict(senders=args.senders, sample=args.sample, duration=args.duration,
                  warmup=args.warmup, login_timeout=args.login_timeout,
                  quiet_timeout=min(120.0, args.scenario_timeout / 2), drain_timeout=30.0,
                  window=args.window, concurrency=args.connect_window)
    specs = []
    if "latency" in args.only:
        specs.append(("latency", dict(common, kind="traffic", clients=args.latency_clients,
                                      rate=args.latency_rate, sample=args.latency_clients)))
    if "throughput" in args.only:
        specs.append(("throughput", dict(common, kind="traffic",
                                         clients=args.throughput_clients, rate=None,
                                         sample=args.throughput_clients)))
    if "big" in args.only:
        for c in args.big_clients:
            specs.append((f"big{c}", dict(common, kind="traffic", clients=c,
                                          rate=args.big_rate)))
    if "idle" in args.only:
        specs.append(("idle", dict(common, kind="idle", clients=args.idle_clients)))
    if "loggedin" in args.only:
        specs.append(("loggedin", dict(common, kind="loggedin", clients=args.loggedin_clients,
                                       idle_s=2.0)))
    if "storm" in args.only:
        specs.append(("storm", dict(common, kind="storm", clients=args.storm_clients,
                                    concurrency=None, login_timeout=args.storm_timeout)))
    return specs


def chatd_tree():
    """
    A fingerprint of chatd's source as it is now (others may edit the work
    tree while the bench runs): sha256 of chatd/*.py, 10 hex digits.
    """
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((servers.ROOT / "chatd").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def run_chat_scenarios(ctx, results):
    args = ctx.args
    for name, spec in chat_specs(args):
        results["scenarios"][name] = {"spec": spec, "servers": {}}
        kinds = list(args.servers)
        if name == "storm" and "floor" in kinds:
            # The same floor with Twisted's default listen backlog (50), as chatd has.
            kinds.insert(kinds.index("floor") + 1, "floor-b50")
        if name.startswith("big") and "chatd" in kinds:
            # The cost of counting (issue 18): chatd with --metrics-port, same run.
            kinds.insert(kinds.index("chatd") + 1, "chatd-metrics")
        for kind in kinds:
            server, mode = ctx.chat_server(kind)
            if server is None:
                continue
            results["scenarios"][name]["servers"][kind] = result = {}
            measure(ctx, name, spec, kind, server, mode, result)
            write_results(results, args.output)


def measure(ctx, name, spec, kind, server, mode, result):
    """
    Start ``server``, run one chat scenario against it into ``result``, stop it.
    """
    result.update(loadavg_before=os.getloadavg()[0], chatd_tree=chatd_tree())
    log(f"{name}: {kind} ({spec['clients']} clients)")
    try:
        server.start()
    except RuntimeError as e:
        result["error"] = str(e)
        log(f"  could not start {kind}: {e}")
        return
    try:
        error = run_async(chat_scenario(server, mode, spec, result),
                          ctx.args.scenario_timeout)
        if error:
            result["error"] = error
        if not server.alive():
            result["error"] = (result.get("error", "") + " server died").strip()
    finally:
        server.stop()
    log("  " + report.one_line(result))


# --- files ---------------------------------------------------------------------


def run_files(ctx, results):
    args = ctx.args
    size = parse_size(args.file_size)
    source = ctx.workdir / f"source-{size}.bin"
    log(f"files: making a {mib(size)} MiB source file")
    sha = files.make_source(source, size)
    entry = {"spec": {"bytes": size, "rounds": args.rounds}, "servers": {}}
    results["scenarios"]["files"] = entry
    started = []
    targets = [("chatd", servers.chatd(ctx.workdir, extra=ctx.chatd_extra))]
    if ctx.pypy and "chatd-pypy" in args.servers:
        targets.append(("chatd-pypy", servers.chatd(ctx.workdir, python_bin=ctx.pypy,
                                                     name="chatd-pypy", extra=ctx.chatd_extra)))
    targets.append(("filefloor", servers.file_floor(ctx.workdir)))
    try:
        for _, server in targets:
            server.start()
            started.append(server)
        for kind, _ in targets:
            entry["servers"][kind] = {"upload": [], "download": []}
        for r in range(args.rounds):
            for direction in ("upload", "download"):
                for kind, server in targets:
                    rec = entry["servers"][kind][direction]
                    try:
                        if kind == "filefloor":
                            f = files.floor_upload if direction == "upload" else files.floor_download
                        else:
                            f = files.chatd_upload if direction == "upload" else files.chatd_download
                        if direction == "upload":
                            one = f(server.port, server.pid, source, sha)
                        else:
                            one = f(server.port, server.pid, size)
                    except Exception as e:  # keep going: report it
                        one = {"error": repr(e)}
                    rec.append(one)
                    log(f"files round {r + 1} {direction} {kind}: "
                        f"{one.get('mb_per_s', one.get('error'))} MB/s, "
                        f"RSS +{one.get('rss_growth_mib')} MiB, "
                        f"client CPU {one.get('client_cpu_share')}")
        for kind, _ in targets:
            data = entry["servers"][kind]
            for direction in ("upload", "download"):
                runs = [x for x in data[direction] if "mb_per_s" in x]
                data[f"{direction}_best_mb_per_s"] = max((x["mb_per_s"] for x in runs), default=None)
                data[f"{direction}_rss_growth_max_mib"] = max(
                    (x["rss_growth_mib"] for x in runs), default=None)
                data[f"{direction}_client_cpu_max"] = max(
                    (x["client_cpu_share"] for x in runs), default=None)
    finally:
        for server in started:
            server.stop()
        write_results(results, args.output)


# --- profile ---------------------------------------------------------------------


def run_profile(ctx, results):
    """
    Where chatd (CPython) spends its time in a big room, measured twice in
    the sending phase: sampled by py-spy (no slowdown, real proportions) and
    under cProfile (exact call counts per broadcast, everything slower).
    Clients stay guests (no /nick), so login fan-out is not in the profile.
    """
    args = ctx.args
    out = Path(args.output + "-profile.txt")
    spec = dict(kind="traffic", clients=args.profile_clients, rate=args.big_rate,
                senders=args.senders, sample=args.sample, duration=args.duration,
                warmup=args.warmup, login_timeout=args.login_timeout, login="greeting",
                quiet_timeout=min(120.0, args.scenario_timeout / 2), drain_timeout=30.0,
                window=args.window, concurrency=args.connect_window)
    entry = {"spec": spec, "servers": {}}
    results["scenarios"]["profile"] = entry
    sections = []

    spy_path = ctx.workdir / "py-spy.txt"
    if (servers.VENV_BIN / "py-spy").exists():
        result = {}
        entry["servers"]["py-spy"] = result
        log(f"profile: chatd under py-spy, {spec['clients']} clients x {spec['rate']} msg/s")
        server = servers.chatd(ctx.workdir, extra=ctx.chatd_extra, name="chatd-py-spy")
        server.start()
        try:
            error = run_async(chat_scenario(server, "chat", dict(spec, py_spy=str(spy_path)),
                                            result), args.scenario_timeout)
            if error:
                result["error"] = error
        finally:
            server.stop()
        if spy_path.exists():
            sections.append(report.py_spy_text(spy_path.read_text(), result))
        else:
            result["error"] = (result.get("error", "") + " py-spy wrote nothing").strip()
    else:
        sections.append("py-spy is not installed (pip install py-spy): no sampled profile\n")

    prof = ctx.workdir / "chatd.prof"
    result = {}
    entry["servers"]["cprofile"] = result
    log(f"profile: chatd under cProfile, {spec['clients']} clients x {spec['rate']} msg/s")
    server = servers.chatd(ctx.workdir, extra=ctx.chatd_extra, name="chatd-profiled",
                           profile=prof)
    server.start()
    try:
        error = run_async(chat_scenario(server, "chat", spec, result), args.scenario_timeout)
        if error:
            result["error"] = error
    finally:
        server.stop(grace=60)
    if prof.exists():
        sections.append(report.profile_text(pstats.Stats(str(prof)), result))
    else:
        result["error"] = (result.get("error", "") + " no profile written").strip()
    out.write_text("\n\n".join(sections))
    entry["profile"] = out.name
    log(f"profile written to {out}")
    write_results(results, args.output)


# --- output ----------------------------------------------------------------------


def machine_info(ctx):
    def first(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    model = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import twisted
        twisted_version = twisted.__version__
    except ImportError:
        twisted_version = None
    try:
        import uvloop
        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return {
        "cpu": model, "cores": os.cpu_count(), "memory_mib": mem,
        "kernel": platform.release(), "os": first(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "python": platform.python_version(), "twisted": twisted_version,
        "pypy": first([str(ctx.pypy / "python"), "--version"]) if ctx.pypy else None,
        "ngircd": first([ctx.ngircd, "--version"]) if ctx.ngircd else None,
        "generator_loop": loop,
        "git_commit": first(["git", "-C", str(servers.ROOT), "rev-parse", "--short", "HEAD"]),
        "chatd_tree": chatd_tree(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nofile_limit": servers.raise_nofile(),
        "loadavg_at_start": os.getloadavg(),
        "chatd_options": ctx.chatd_extra,
    }


def write_results(results, output):
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(report.markdown(results))


def main(argv=None):
    args = parse_args(argv)
    hard = servers.raise_nofile()
    atexit.register(servers.kill_all)
    workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-"))

    def stop(signum, frame):
        servers.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        ctx = Context(args, workdir)
        results = {"command": "python -m bench.run " + " ".join(argv or sys.argv[1:]),
                   "quick": args.quick, "machine": machine_info(ctx), "notes": ctx.notes,
                   "scenarios": {}}
        if hard < max([args.idle_clients, args.storm_clients, *args.big_clients]) + 100:
            ctx.notes.append(f"RLIMIT_NOFILE hard limit is {hard}: big scenarios may fail")
        for note in ctx.notes:
            log("note:", note)
        run_chat_scenarios(ctx, results)
        if "files" in args.only:
            run_files(ctx, results)
        if "profile" in args.only:
            run_profile(ctx, results)
        if "history" in args.only:
            from bench import history

            history.run(ctx, results, chat_specs, measure)
            write_results(results, args.output)
        write_results(results, args.output)
        log(f"results: {Path(args.output).with_suffix('.md')}")
        print(report.markdown(results))
    finally:
        servers.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
