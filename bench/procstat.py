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
