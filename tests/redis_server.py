"""
A real ``redis-server`` for the cluster tests, on a free loopback port with
its own directory and no persistence; ``redis-cli`` and a raw RESP socket
to poke at it; and the fixtures (imported by the conftests that use them).
"""

import shutil
import socket
import subprocess
import time

import pytest

from daemon import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisServer:
    def __init__(self, directory, port=None):
        self.directory = directory
        self.port = port or free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=10):
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = open(self.directory / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--save", "", "--appendonly", "no"],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:  # until it answers PING
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            try:
                if self.cli("PING") == "PONG":
                    return self
            except (OSError, subprocess.CalledProcessError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server not up in {timeout}s: {self.log()}")
            time.sleep(0.05)

    def log(self):
        return (self.directory / "redis.log").read_text(errors="replace")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc is not None:
            self._log.close()
        self.proc = None

    def cli(self, *args):
        """
        One command through ``redis-cli``; its output without the newline.
        """
        out = subprocess.run([REDIS_CLI, "-p", str(self.port), *args],
                             capture_output=True, check=True, timeout=10)
        return out.stdout.decode("utf-8", "replace").rstrip("\n")

    def command(self, *args):
        """
        One command over a raw socket (bytes arguments pass as they are,
        invalid UTF-8 included); the first line of the reply.
        """
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            s.sendall(resp(*args))
            return s.makefile("rb").readline().rstrip(b"\r\n")

    def subscribe(self, channel):
        """
        A ``Subscription`` to ``channel``, once Redis confirmed it.
        """
        return Subscription(self.port, channel)

    def nodes(self):
        return set(self.cli("SMEMBERS", "chatd:0:nodes").split())


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Subscription:
    """
    A raw RESP subscriber: ``message()`` is the next message's payload.
    """

    def __init__(self, port, channel):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.file = self.sock.makefile("rb")
        self.sock.sendall(resp("SUBSCRIBE", channel))
        assert self._reply()[0] == b"subscribe"

    def _reply(self):
        head = self.file.readline()
        if head.startswith(b"*"):
            return [self._reply() for _ in range(int(head[1:]))]
        if head.startswith(b"$"):
            data = self.file.read(int(head[1:]) + 2)
            return data[:-2]
        return head[1:].rstrip(b"\r\n")

    def message(self, timeout=5):
        self.sock.settimeout(timeout)
        kind, _, payload = self._reply()
        assert kind == b"message", kind
        return payload

    def close(self):
        self.file.close()
        self.sock.close()


def wait_for(predicate, what, timeout=10):
    """
    Poll ``predicate`` (a state outside our reach: Redis, another process).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def session_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(session_redis):
    """
    The session's Redis, empty.
    """
    session_redis.cli("FLUSHALL")
    return session_redis


@pytest.fixture
def own_redis(tmp_path):
    """
    A Redis of this test's own (to stop and start).
    """
    server = RedisServer(tmp_path / "own-redis").start()
    yield server
    server.stop()


@pytest.fixture
def make_node(make_daemon):
    """
    ``make_node(redis, *args)``: a chatd daemon joined to ``redis``, once
    the cluster knows it (its heartbeat is in).
    """
    def make(redis, *args, **kw):
        before = redis.nodes()
        node = make_daemon("--redis", redis.url, *args, **kw)
        wait_for(lambda: redis.nodes() - before, "the node to join the cluster")
        node.node_id = (redis.nodes() - before).pop()
        return node
    return make
