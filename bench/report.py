"""
Turning the raw benchmark results into Markdown tables and a profile summary.
"""

import os

ORDER = ["chatd", "chatd-metrics", "chatd-pypy", "dfloor", "floor", "floor-b50", "floor-pypy",
         "ngircd"]
TITLES = {"chatd": "chatd (CPython)", "chatd-metrics": "chatd, metrics on",
          "chatd-pypy": "chatd (PyPy)",
          "dfloor": "direct-write floor", "floor": "naive Twisted floor",
          "floor-b50": "naive floor, backlog 50",
          "floor-pypy": "Twisted floor (PyPy)", "ngircd": "ngircd"}
SUBJECTS = ["chatd", "chatd-pypy"]
REFERENCES = ["dfloor", "floor", "floor-pypy", "ngircd"]
SHORT = {"chatd": "chatd", "chatd-metrics": "chatd+metrics", "chatd-pypy": "PyPy",
         "dfloor": "dfloor", "floor": "floor", "floor-b50": "floor-b50",
         "floor-pypy": "floor-PyPy", "ngircd": "ngircd"}


def _get(result, path):
    value = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


TRAFFIC_METRICS = [
    ("p50 latency (ms)", "latency.p50_ms", "low"),
    ("p99 latency (ms)", "latency.p99_ms", "low"),
    ("max latency (ms)", "latency.max_ms", "low"),
    ("deliveries/s", "deliveries_per_s", "high"),
    ("lost deliveries", "lost_deliveries", None),
    ("connect + log in all (s)", "login.seconds", "low"),
    ("server CPU (% of a core)", "server_cpu_pct", None),
    ("server RSS peak (MiB)", "server_rss_peak_mib", "low"),
    ("generator CPU (% of a core)", "generator_cpu_pct", None),
]
METRICS = {
    "traffic": TRAFFIC_METRICS,
    "idle": [("bytes per idle connection", "bytes_per_conn", "low"),
             ("connect all (s)", "login.seconds", "low"),
             ("RSS with all connected (MiB)", "rss_mib", "low")],
    "loggedin": [("bytes per logged-in connection", "bytes_per_conn", "low"),
                 ("connect + log in all (s)", "login.seconds", "low"),
                 ("RSS with all logged in (MiB)", "rss_mib", "low")],
    "storm": [("connect + log in all (s)", "login.seconds", "low"),
              ("then quiet after (s)", "settle_s", "low")],
}


def _fmt(value):
    if value is None:
        return "—"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(result, path):
    if result is None:
        return "—"
    login = result.get("login") or {}
    if path == "login.seconds" and login and login.get("logged_in", 0) < login.get("requested", 0):
        return f"only {login['logged_in']:,}/{login['requested']:,} in {login['seconds']:.0f}"
    value = _get(result, path)
    if value is None and result.get("error"):
        return "n/a"
    return _fmt(value)


def _ratio(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return "—"
    return f"{a / b:.2f}×"


def one_line(result):
    if not result:
        return "no result"
    parts = []
    login = result.get("login")
    if login:
        parts.append(f"login {login['logged_in']}/{login['requested']} in {login['seconds']}s")
    if "latency" in result:
        lat = result["latency"]
        parts.append(f"p50 {lat['p50_ms']} p99 {lat['p99_ms']} max {lat['max_ms']} ms")
        parts.append(f"{result['deliveries_per_s']} deliveries/s")
        parts.append(f"lost {result['lost_deliveries']}")
        parts.append(f"srv cpu {result['server_cpu_pct']}% gen cpu {result['generator_cpu_pct']}%")
    if "bytes_per_conn" in result:
        parts.append(f"{result['bytes_per_conn']} B/conn")
    if "settle_s" in result:
        parts.append(f"settled {result['settle_s']}s")
    if result.get("error"):
        parts.append(f"ERROR {result['error']}")
    return "; ".join(parts)


def _servers_in(scenarios):
    present = set()
    for entry in scenarios.values():
        present.update(entry.get("servers", {}))
    return [s for s in ORDER if s in present]


def chat_table(results):
    scenarios = {k: v for k, v in results["scenarios"].items()
                 if k not in ("files", "profile")}
    if not scenarios:
        return ""
    cols = _servers_in(scenarios)
    pairs = [(s, r) for s in SUBJECTS if s in cols for r in REFERENCES if r in cols]
    head = ["scenario", "metric"] + [TITLES[c] for c in cols] + \
        [f"{SHORT[s]}/{SHORT[r]}" for s, r in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in scenarios.items():
        spec = entry["spec"]
        kind = spec["kind"]
        if kind == "traffic":
            rate = f"{spec['rate']} msg/s" if spec.get("rate") else "flat out"
            label = f"{name}: {spec['clients']:,} clients × {rate}"
        elif kind == "idle":
            label = f"{name}: {spec['clients']:,} idle connections"
        elif kind == "loggedin":
            label = f"{name}: {spec['clients']:,} logged in (/nick answered), then 2 s idle"
        else:
            label = f"{name}: {spec['clients']:,} connect + log in at once"
        servers = entry["servers"]
        for title, path, _better in METRICS[kind]:
            row = [label, title]
            row += [_cell(servers.get(c), path) for c in cols]
            for s, r in pairs:
                row.append(_ratio(_get(servers.get(s) or {}, path),
                                  _get(servers.get(r) or {}, path)) if _better else "")
            lines.append("| " + " | ".join(row) + " |")
            label = ""
        errors = [f"{TITLES[c]}: {servers[c]['error']}" for c in cols
                  if c in servers and servers[c].get("error")]
        if errors:
            lines.append("| | errors | " + "; ".join(errors) + " |" + " |" * (len(head) - 3))
    return "\n".join(lines)


def files_table(results):
    entry = results["scenarios"].get("files")
    if not entry:
        return ""
    servers = entry["servers"]
    cols = [c for c in ("chatd", "chatd-pypy", "filefloor") if c in servers]
    titles = {"chatd": "chatd (CPython)", "chatd-pypy": "chatd (PyPy)",
              "filefloor": "floor (socket→file+sha256+fsync / sendfile)"}
    subjects = [c for c in cols if c != "filefloor"]
    head = ["metric (best of rounds)"] + [titles[c] for c in cols] + \
        [f"{SHORT[s]}/floor" for s in subjects]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    size = entry["spec"]["bytes"]
    for title, key in ((f"upload {size >> 20} MiB (MB/s)", "upload_best_mb_per_s"),
                       (f"download {size >> 20} MiB (MB/s)", "download_best_mb_per_s"),
                       ("server RSS growth during upload (MiB, worst)",
                        "upload_rss_growth_max_mib"),
                       ("server RSS growth during download (MiB, worst)",
                        "download_rss_growth_max_mib"),
                       ("bench client's CPU during download (share of a core, worst)",
                        "download_client_cpu_max")):
        row = [title] + [_fmt(servers[c].get(key)) for c in cols]
        for s in subjects:
            row.append(_ratio(servers[s].get(key), servers.get("filefloor", {}).get(key))
                       if "mb_per_s" in key else "")
        lines.append("| " + " | ".join(row) + " |")
    errors = [f"{c}: {x['error']}" for c in cols for d in ("upload", "download")
              for x in servers[c].get(d, []) if "error" in x]
    if errors:
        lines.append("")
        lines.append("Errors: " + "; ".join(errors[:6]))
    return "\n".join(lines)


def _check(ok):
    return "—" if ok is None else ("met" if ok else "**missed**")


def targets_table(results):
    sc = results["scenarios"]
    rows = []

    def val(name, server, path):
        return _get(sc.get(name, {}).get("servers", {}).get(server) or {}, path)

    def compare(name, subject, ref, factor):
        a, b = val(name, subject, "latency.p99_ms"), val(name, ref, "latency.p99_ms")
        if a is None or b is None:
            return None, "—"
        return a <= factor * b, f"{a:.3g} vs {factor}×{b:.3g} ms"

    bigs = sorted((int(k[3:]) for k in sc if k.startswith("big")))
    checks = []
    if "latency" in sc:
        checks.append(("p99 at latency scenario ≤ 1.5× naive Twisted floor", "latency",
                       "floor", 1.5))
    for c in bigs:
        checks.append((f"p99 at big{c} ≤ ngircd", f"big{c}", "ngircd", 1.0))
    for title, name, ref, factor in checks:
        row = [title]
        for s in SUBJECTS:
            ok, text = compare(name, s, ref, factor)
            row.append(f"{_check(ok)} ({text})")
        rows.append(row)
    if bigs:
        # Issue 18: counting must not slow the hot path (CPython only).
        ok, text = compare(f"big{bigs[-1]}", "chatd-metrics", "chatd", 1.05)
        rows.append([f"p99 at big{bigs[-1]} with --metrics-port ≤ 1.05× without",
                     f"{_check(ok)} ({text})", "—"])
    for name, what in (("idle", "idle"), ("loggedin", "logged-in")):
        if name in sc:
            row = [f"≤ 3 KB (3072 B) per {what} connection"]
            for s in SUBJECTS:
                v = val(name, s, "bytes_per_conn")
                row.append("—" if v is None else f"{_check(v <= 3072)} ({v:,} B)")
            rows.append(row)
    if "storm" in sc:
        row = ["storm: all connected and logged in ≤ 3 s"]
        for s in SUBJECTS:
            login = val("storm", s, "login")
            if not login:
                row.append("—")
                continue
            ok = login["logged_in"] == login["requested"] and login["seconds"] <= 3
            row.append(f"{_check(ok)} ({login['logged_in']:,}/{login['requested']:,} "
                       f"in {login['seconds']:.2f} s)")
        rows.append(row)
    files = sc.get("files", {}).get("servers", {})
    floor = files.get("filefloor", {})
    for title, key, factor in (("upload ≥ 0.8× socket→file+sha256+fsync floor",
                                "upload_best_mb_per_s", 0.8),
                               ("download ≥ 0.9× sendfile floor",
                                "download_best_mb_per_s", 0.9)):
        if files:
            row = [title]
            for s in SUBJECTS:
                a, b = files.get(s, {}).get(key), floor.get(key)
                row.append("—" if a is None or b is None
                           else f"{_check(a >= factor * b)} ({a / b:.2f}×)")
            rows.append(row)
    if files:
        row = ["RSS growth ≤ 32 MiB during a transfer"]
        for s in SUBJECTS:
            g = [files.get(s, {}).get(k) for k in ("upload_rss_growth_max_mib",
                                                   "download_rss_growth_max_mib")]
            g = [x for x in g if x is not None]
            row.append("—" if not g else f"{_check(max(g) <= 32)} (+{max(g)} MiB)")
        rows.append(row)
    row = ["no loss anywhere"]
    for s in SUBJECTS:
        lost = [val(n, s, "lost_deliveries") for n in sc if n not in ("files", "profile")]
        lost = [x for x in lost if x is not None]
        row.append("—" if not lost else f"{_check(sum(lost) == 0)} ({sum(lost):,} lost)")
    rows.append(row)
    head = ["target", "chatd (CPython)", "chatd (PyPy)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(results):
    m = results.get("machine", {})
    out = ["# chatd benchmark results", ""]
    out.append(f"Run {m.get('date')} at commit {m.get('git_commit')}"
               f"{' (quick mode: small sizes)' if results.get('quick') else ''}: "
               f"`{results.get('command')}`.")
    out.append("")
    out.append(f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_mib')} MiB, "
               f"{m.get('os')}, Linux {m.get('kernel')}; Python {m.get('python')}, "
               f"Twisted {m.get('twisted')}; {m.get('pypy') or 'no PyPy'}; "
               f"{m.get('ngircd') or 'no ngircd'}; generator on {m.get('generator_loop')}; "
               f"chatd extra options: {' '.join(m.get('chatd_options') or []) or 'none'}; "
               f"load average at start {_fmt((m.get('loadavg_at_start') or [None])[0])}.")
    for note in results.get("notes", []):
        out.append(f"\nNote: {note}")
    out += ["", "## Targets", "", targets_table(results), "", "## Chat", "",
            "Latency is end to end (send to receipt, both in the generator process); "
            "loss is expected minus received deliveries, counted per message (not per "
            "newline); ratios are chatd ÷ reference (below 1 is better for latency, "
            "above 1 for deliveries/s).", "",
            "- chatd runs with pacing and per-address limits off (the options above).",
            "- The **naive Twisted floor** writes once per recipient per line with no "
            "coalescing: beating it says little.  The **direct-write floor** joins each "
            "recipient's lines per reactor pass and `send()`s them itself when the "
            "transport holds nothing: the best a Twisted server can do, the real floor.",
            "- The storm compares chatd's quiet presence (above `--presence-limit` joins "
            "are not announced) with ngircd announcing every JOIN to the channel.",
            "- logged-in: RSS growth ÷ clients after each `/nick` was answered and 2 s "
            "idle; idle: raw connections (greeting read).", "",
            chat_table(results)]
    ft = files_table(results)
    if ft:
        out += ["", "## Files", "", ft]
    if results.get("history"):
        from bench import history

        out += ["", "## Rooms' history", "", history.markdown(results["history"])]
    prof = results["scenarios"].get("profile", {})
    if prof.get("profile"):
        out += ["", "## Profile", ""]
        for kind, r in prof.get("servers", {}).items():
            out.append(f"- chatd under {kind}: {one_line(r)}")
        out += ["", f"Top functions: `bench/results/{prof['profile']}`."]
    return "\n".join(out) + "\n"


def profile_text(stats, result, top=30):
    """
    The functions that dominate a chatd run, per broadcast.
    """
    broadcasts = result.get("messages_sent") or 0
    deliveries = result.get("received_deliveries") or 0
    rows = []
    total = 0.0
    for (filename, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        total += tt
        rows.append((tt, ct, nc, f"{os.path.basename(filename)}:{line}({func})"))
    lines = [
        "chatd (CPython) under cProfile: " + one_line(result),
        f"broadcasts (messages sent): {broadcasts:,}; deliveries: {deliveries:,}; "
        f"total profiled time: {total:.2f} s (includes login and settling)",
        "",
        "Top functions by own time; per broadcast = own time / broadcasts, "
        "calls/bc = calls per broadcast.",
        "",
        f"{'own s':>8} {'cum s':>8} {'calls':>11} {'us/bc':>9} {'calls/bc':>9}  function",
    ]
    for tt, ct, nc, name in sorted(rows, reverse=True)[:top]:
        per = tt / broadcasts * 1e6 if broadcasts else 0
        calls = nc / broadcasts if broadcasts else 0
        lines.append(f"{tt:8.3f} {ct:8.3f} {nc:11,} {per:9.1f} {calls:9.1f}  {name}")
    lines += ["", "Top functions by cumulative time:", ""]
    for tt, ct, nc, name in sorted(rows, key=lambda r: r[1], reverse=True)[:top]:
        lines.append(f"{tt:8.3f} {ct:8.3f} {nc:11,}  {name}")
    return "\n".join(lines) + "\n"


def py_spy_text(raw, result, top=30):
    """
    Summarise py-spy's raw (collapsed) stacks: own and inclusive share of
    the samples per function, and what that is per delivery.
    """
    own, incl = {}, {}
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    deliveries = result.get("received_deliveries") or 0
    cpu_s = (result.get("server_cpu_pct") or 0) / 100 * (result.get("send_seconds") or 0)
    lines = [
        "chatd (CPython) sampled by py-spy (250 Hz, non-blocking) while sending: "
        + one_line(result),
        f"samples (non-idle): {total:,}; deliveries: {deliveries:,}; server CPU in that "
        f"phase about {cpu_s:.1f} s, so about "
        f"{(cpu_s / deliveries * 1e6) if deliveries else 0:.2f} us of CPU per delivery",
        "",
        f"{'own %':>7} {'incl %':>7}  function (file)",
    ]
    for name, n in sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        lines.append(f"{100 * n / total:7.1f} {100 * incl[name] / total:7.1f}  {name}")
    lines += ["", "By inclusive share:", ""]
    for name, n in sorted(incl.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        lines.append(f"{100 * own.get(name, 0) / total:7.1f} {100 * n / total:7.1f}  {name}")
    return "\n".join(lines) + "\n"
