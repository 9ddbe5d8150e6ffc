"""
A ``loadgen.Generator`` whose bulk receivers are held by ``sink.c`` (built
here with the system's C compiler): the latency samplers and the senders
stay ``loadgen`` clients, every other connection is the C program's, which
logs in the same way and counts lines and bench messages at a fraction of
the CPU.  On a 2-core machine that leaves the servers the core the Python
receivers took.  ``available()`` says whether it can be built.
"""

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import loadgen

SOURCE = Path(__file__).with_name("sink.c")
_built = None


def available():
    """
    The path of the built sink, or ``None`` when there is no C compiler.
    """
    global _built
    if _built is None:
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            return None
        binary = Path(tempfile.gettempdir()) / f"chatd-bench-sink-{SOURCE.stat().st_mtime_ns}"
        if not binary.exists():
            subprocess.run([compiler, "-O2", "-o", str(binary), str(SOURCE)], check=True)
        _built = binary
    return _built


class _Held:
    """
    Stands in ``Generator.clients`` for the connections the sink holds.
    """

    lines = messages = sent = 0
    closed = False
    transport = True
    buf = b""


class _Totals(_Held):
    """
    The sink's counts, read from it on each use.
    """

    def __init__(self, gen):
        self.gen = gen

    @property
    def lines(self):
        return self.gen.sink_counts()[0]

    @property
    def messages(self):
        return self.gen.sink_counts()[1]


class SinkGenerator(loadgen.Generator):
    """
    ``connect(count, parse=P)``: the first P clients and the last
    ``senders`` are ``loadgen`` clients, the rest the sink's.
    """

    def __init__(self, host, port, mode="chat", pad=32, senders=20):
        loadgen.Generator.__init__(self, host, port, mode, pad)
        self.senders = senders
        self.sink = None

    async def connect(self, count, parse=0, probe=False, concurrency=None, login="full",
                      timeout=120.0, oper=()):
        bulk = count - parse - self.senders
        if self.clients or bulk <= 0 or login != "full" or self.mode != "chat":
            return await loadgen.Generator.connect(self, count, parse, probe, concurrency,
                                                   login, timeout, oper)
        start = time.monotonic()
        self.sink = subprocess.Popen(
            [str(available()), self.host, str(self.port), str(bulk), str(parse),
             str(concurrency or bulk), str(int(timeout))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        loop = asyncio.get_running_loop()
        ready = loop.run_in_executor(None, self.sink.stdout.readline)
        first = await self._python(parse, parse, probe, concurrency, timeout)
        held = await ready
        self.clients += [_Totals(self)] + [_Held()] * (bulk - 1)
        last = await self._python(self.senders, 0, False, concurrency, timeout)
        sunk = int(held.split()[1]) if held.startswith("ready ") else 0
        return {"requested": count, "sink": bulk,
                "logged_in": first["logged_in"] + sunk + last["logged_in"],
                "seconds": round(time.monotonic() - start, 3),
                "timed_out": first["timed_out"] or last["timed_out"] or sunk < bulk,
                "errors": first["errors"] + last["errors"]}

    async def _python(self, count, parse, probe, concurrency, timeout):
        if not count:
            return {"logged_in": 0, "timed_out": False, "errors": []}
        return await loadgen.Generator.connect(self, count, parse, probe, concurrency,
                                               "full", timeout)

    def _ask(self, command):
        self.sink.stdin.write(command + "\n")
        self.sink.stdin.flush()
        return self.sink.stdout.readline()

    def sink_counts(self):
        if self.sink is None:
            return 0, 0
        lines, messages, last_rx, lost = map(int, self._ask("count").split())
        self.last_rx = max(self.last_rx, last_rx / loadgen.NS)
        self.sink_lost = lost
        return lines, messages

    def reset(self):
        for c in self.clients:
            if not isinstance(c, _Held):
                c.lines = c.messages = c.sent = 0
                c.buf = b""
        if self.sink is not None:
            self._ask("reset")

    @property
    def helper_pids(self):
        """
        Processes working for this generator (its CPU is the generator's).
        """
        return [self.sink.pid] if self.sink is not None else []

    def close(self):
        for c in self.clients:
            if not isinstance(c, _Held) and c.transport is not None and not c.closed:
                c.transport.abort()
        if self.sink is not None:
            self.lost_connections += getattr(self, "sink_lost", 0)
            try:
                self._ask("quit")
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.sink.wait(5)
            except subprocess.TimeoutExpired:
                self.sink.kill()
            self.sink = None
