"""
What a process costs, read from /proc: resident memory and CPU seconds.
"""

import os
import threading
import time

_TICK = os.sysconf("SC_CLK_TCK")


def rss(pid):
    """
    Resident set size of ``pid`` in bytes (0 if it is gone).
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu(pid):
    """
    User plus system CPU seconds used so far by ``pid``.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def sockets(pid):
    """
    How many sockets ``pid`` holds open (0 if it is gone).
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def processes(server):
    """
    ``{name: pid}`` of what serves a run: one server, or a cluster's nodes
    and its Redis (``server.processes``).
    """
    return getattr(server, "processes", None) or {server.name: server.pid}


def footprint(server):
    """
    ``{name: (rss bytes, CPU seconds, sockets)}`` of each of ``server``'s
    processes now.
    """
    return {name: (rss(pid), cpu(pid), sockets(pid))
            for name, pid in processes(server).items()}


def growth(before, after, wall):
    """
    Per process, between two ``footprint``s ``wall`` seconds apart: RSS
    now and its growth, CPU as a share of one core, sockets opened.
    """
    out = {}
    for name, (rss0, cpu0, socks0) in before.items():
        rss1, cpu1, socks1 = after.get(name, (0, 0.0, 0))
        out[name] = {"rss_mib": round(rss1 / 2**20, 1),
                     "rss_growth_mib": round((rss1 - rss0) / 2**20, 1),
                     "rss_growth_bytes": rss1 - rss0,
                     "cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1) if wall > 0 else None,
                     "sockets_opened": socks1 - socks0}
    return out


def machine():
    """
    The whole machine's CPU ticks so far: ``(busy, system, softirq, total)``
    over every core (``/proc/stat``).  Softirq is where loopback TCP is
    carried, counted against no process.
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return (0, 0, 0, 0)
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal, system, softirq, sum(fields))


def machine_share(before, after, wall):
    """
    Between two ``machine()`` readings: busy, system and softirq time as
    percentages of all the machine's cores over ``wall`` seconds (the same
    window as ``growth``'s CPU shares).
    """
    total = wall * (os.cpu_count() or 1) * _TICK
    if total <= 0:
        return {}
    return {name: round(100 * (after[i] - before[i]) / total, 1)
            for i, name in enumerate(("busy_pct", "system_pct", "softirq_pct"))}


class RssSampler:
    """
    Polls the RSS of ``pid`` in a thread; ``peak`` is the largest seen.
    """

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.peak = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))
