"""
Test helpers for behaviour that crosses the wire: a real ``twistd -n chatd``
on a free loopback port, and a blocking socket client that reads lines and
raw bytes with timeouts.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWISTD = str(Path(sys.executable).with_name("twistd"))


_GIVEN = set()  # ports handed out in this test run


def free_port():
    """
    A port nothing listens on now, never one handed out before in this run
    (two calls in a row could otherwise get the same one back).
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def server_queues(server_port, client):
    """
    ``(unsent, unread)``: bytes the kernel holds on the server's side of
    ``client``'s connection (IPv4 loopback; from /proc/net/tcp) not yet
    sent to the client, and received but not yet read by the server; or
    ``None`` if the connection is not found.
    """
    host, port = client.sock.getsockname()
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(host), "little"), port)
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            fields = row.split()
            if fields[2] == want and int(fields[1].split(":")[1], 16) == server_port:
                unsent, unread = fields[4].split(":")
                return int(unsent, 16), int(unread, 16)
    return None


def wait_until_read(server_port, client, timeout=5.0):
    """
    Wait until the server has read everything ``client`` sent so far.
    """
    deadline = time.monotonic() + timeout
    while server_queues(server_port, client)[1]:
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not read within {timeout} s")
        time.sleep(0.005)


class Daemon:
    """
    A chatd process started the way a user starts it.
    """

    def __init__(self, data_dir, *args, port=None, env=None, preexec_fn=None):
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.port = port or free_port()
        self.env = env
        self.preexec_fn = preexec_fn
        self.proc = None
        self.log_path = self.data_dir.parent / f"chatd-{self.port}.log"

    def start(self, timeout=15):
        self._log = open(self.log_path, "ab")
        command = [TWISTD, "-n", "--pidfile=", "chatd", "--port", str(self.port),
                   "--interface", "127.0.0.1", "--data-dir", str(self.data_dir),
                   *self.args]
        self.proc = subprocess.Popen(command, cwd=str(self.data_dir.parent),
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatd exited at start:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"chatd did not listen in {timeout}s:\n{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text, count=1, timeout=5.0):
        """
        Wait until ``text`` appears ``count`` times in the log.
        """
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} (x{count}) not in the log:\n{self.log()}")
            time.sleep(0.02)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def rss(self):
        """
        The daemon's resident set size in bytes.
        """
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def client(self, **kw):
        return Client(self.port, **kw)


class Client:
    """
    A blocking loopback client: one user at a raw socket.
    """

    def __init__(self, port, host="127.0.0.1", timeout=5.0, greet=True, sock=None,
                 source=None):
        """
        Connect (from the address ``source``, or take the connected
        ``sock``) and, with ``greet``, read the greeting and the guest name
        in it.
        """
        self.sock = sock or socket.create_connection(
            (host, port), timeout, source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buffer = b""
        self.name = None
        if greet:
            greeting = self.line()
            assert greeting.startswith("*** Welcome"), greeting
            self.name = greeting.split("you are ")[1].split(";")[0]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def say(self, line):
        self.send(line + "\n")

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out; buffer: {self.buffer[:200]!r}")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; buffer: {self.buffer[:200]!r}")
        self.buffer += chunk

    def raw_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buffer:
            self._fill(deadline)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def line(self, timeout=None):
        return self.raw_line(timeout).decode("utf-8")

    def answer(self, timeout=None, raw=False):
        """
        The next line that is not part of a room's replayed history (``= [...]
        ...`` and ``- end of history of #ROOM``, sent after the greeting once
        anything was said): for tests about something else.
        """
        while True:
            line = self.raw_line(timeout)
            if not line.startswith((b"= [", b"- end of history of ")):
                return line if raw else line.decode("utf-8")

    def expect(self, predicate, timeout=None):
        """
        Read lines until one satisfies ``predicate`` (a str prefix or a
        callable) and return it; the lines before it are dropped (see
        ``lines_until`` to check them).
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        skipped = []
        while True:
            line = self.line(max(0.01, deadline - time.monotonic()))
            ok = line.startswith(predicate) if isinstance(predicate, str) else predicate(line)
            if ok:
                return line
            skipped.append(line)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no match; skipped {skipped}")

    def lines_until(self, predicate, timeout=None):
        """
        Every line up to and including the first matching ``predicate``
        (a str prefix or a callable).
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while True:
            line = self.line(max(0.01, deadline - time.monotonic()))
            seen.append(line)
            if line.startswith(predicate) if isinstance(predicate, str) else predicate(line):
                return seen

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buffer) < n:
            self._fill(deadline)
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def nothing(self, wait=0.3):
        """
        Assert no line arrives within ``wait`` seconds.
        """
        try:
            line = self.line(wait)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected line: {line!r}")

    def closed(self, timeout=None):
        """
        True once the server has closed the connection (after any lines).
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self._fill(deadline)
        except (ConnectionError, OSError) as e:
            if isinstance(e, TimeoutError):
                return False
            return True

    def nick(self, name):
        self.say(f"/nick {name}")
        self.expect(lambda l: l.endswith(f"is now known as {name}"))
        self.name = name

    def close(self):
        self.sock.close()
