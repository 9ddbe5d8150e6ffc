"""
Shared tools of the adversarial suite: figures, hostile and slow clients,
a many-socket pump, byte-level checks of what the server relays, and the
daemon's CPU time.
"""

import hashlib
import json
import os
import random
import selectors
import socket
import time

import spec
from daemon import Client, server_queues

CONTROL_OK = b"\r\n"
FAST = 0.5  # seconds: a bystander's line must cross the server faster than this


# --- figures -----------------------------------------------------------------


def record(test, figure, value, unit=""):
    """
    Print one observed figure and, if ``CHATD_FIGURES`` names a file, append
    it there as a JSON line.
    """
    if isinstance(value, float):
        value = round(value, 4)
    print(f"FIGURE {test}: {figure} = {value} {unit}".rstrip())
    path = os.environ.get("CHATD_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "figure": figure, "value": value,
                                "unit": unit}) + "\n")


MiB = 1024 * 1024


# --- clients -----------------------------------------------------------------


class AdvClient(Client):
    """
    ``Client`` with a chosen source address (127.0.0.2 counts as another
    address for the per-IP limit) and receive buffer (set before connect).
    """

    def __init__(self, port, host="127.0.0.1", timeout=5.0, greet=True,
                 source=None, rcvbuf=None, nodelay=False):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.connect((host, port))
        Client.__init__(self, port, host, timeout, greet, sock=sock)

    def raw_until(self, marker, timeout=None):
        """
        The raw bytes received up to and including the line that contains
        ``marker`` (bytes), CRLFs kept.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            at = self.buffer.find(marker)
            if at >= 0:
                end = self.buffer.find(b"\r\n", at)
                if end >= 0:
                    data, self.buffer = self.buffer[:end + 2], self.buffer[end + 2:]
                    return data
            self._fill(deadline)

    def sync(self, timeout=None):
        """
        Round trip to the server (``/who``): every line it sent before the
        reply, without the reply.
        """
        self.say("/who")
        return self.lines_until("- online (", timeout)[:-1]


def store_file(port, size, seed, name="big.bin"):
    """
    Upload ``size`` seeded random bytes as ``name``: ``(uploader, data)``.
    """
    data = random.Random(seed).randbytes(size)
    uploader = AdvClient(port)
    uploader.send(b"/upload %s %d\n" % (name.encode(), len(data)) + data)
    stored = uploader.expect(f"*** stored {name}")
    assert stored.endswith(hashlib.sha256(data).hexdigest()), stored
    return uploader, data


def rtt(sender, receiver, tag="ping", timeout=5.0):
    """
    Seconds for one chat line from ``sender`` to reach ``receiver``.
    """
    token = f"{tag}-{time.monotonic_ns()}"
    start = time.monotonic()
    sender.say(token)
    receiver.expect(lambda line: line == f"<{sender.name}> {token}", timeout)
    return time.monotonic() - start


def connect_retry(port, timeout=5.0, **kw):
    """
    A greeted client, retrying while the server still refuses (limits).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = AdvClient(port, greet=False, **kw)
            first = c.line(2)
            if first.startswith("*** Welcome"):
                c.name = first.split("you are ")[1].split(";")[0]
                return c
            c.close()
        except (OSError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no connection accepted within {timeout}s")
        time.sleep(0.05)


# --- what a client may be shown ---------------------------------------------


def unsafe_in(data):
    """
    What is wrong with server output ``data`` (bytes of CRLF-ended lines,
    no raw file sections), or ``None``: every line must be valid UTF-8 with
    no C0 control (no bare CR, no ESC, no NUL), DEL, C1 code point, bidi
    override/isolate or line separator.
    """
    if data and not data.endswith(CONTROL_OK):
        return f"does not end with CRLF: {data[-40:]!r}"
    for line in data.split(CONTROL_OK)[:-1]:
        bad = [b for b in line if b < 0x20]
        if bad:
            return f"control byte {bad[0]:#04x} in {line[:120]!r}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            return f"invalid UTF-8 ({e}) in {line[:120]!r}"
        match = spec.UNSAFE.search(text)
        if match:
            return f"code point U+{ord(match.group()):04X} in {text[:120]!r}"
    return None


# --- the daemon's resources -----------------------------------------------


def cpu_seconds(pid):
    """
    User plus system CPU seconds used so far by process ``pid``.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_share(pid, seconds=1.0):
    """
    Fraction of one core process ``pid`` used over the next ``seconds``.
    """
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


def kernel_send_queue(server_port, client):
    """
    Bytes the kernel holds unsent on the server's side of ``client``'s
    connection, or ``None``.
    """
    queues = server_queues(server_port, client)
    return queues and queues[0]


def stalled_send_queue(server_port, client, timeout=10.0, interval=0.05):
    """
    Wait until the kernel's queue from the server to ``client`` (which does
    not read) is filled and stops growing; its size in bytes.
    """
    deadline = time.monotonic() + timeout
    size, still = 0, 0
    while still < 3:
        assert time.monotonic() < deadline, "the kernel queue kept growing"
        time.sleep(interval)
        queued = kernel_send_queue(server_port, client) or 0
        still = still + 1 if 0 < queued <= size else 0
        size = max(size, queued)
    return size


def accept_queue(port):
    """
    Connections waiting in the kernel for the daemon listening on ``port``
    to accept them (from /proc/net/tcp).
    """
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def files_under(path):
    """
    Every file below ``path`` (relative paths, sorted).
    """
    found = []
    for root, _, names in os.walk(path):
        for name in names:
            found.append(os.path.relpath(os.path.join(root, name), path))
    return sorted(found)


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- many sockets at once ---------------------------------------------------


class Peer:
    """
    One non-blocking connection of a ``Swarm``.
    """

    def __init__(self, sock, name):
        self.sock = sock
        self.name = name
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closed = None  # why, once the server closed it
        self.notices = []  # lines that are not chat, as str
        self.count_only = None  # a pattern (bytes): only count lines and it
        self.lines = 0  # lines received, when counting only
        self.hits = 0  # occurrences of the pattern, when counting only
        self._tail = b""


class Swarm:
    """
    Many greeted clients driven by one thread with a selector: send without
    blocking, read everything that arrives, hand each chat line to
    ``on_chat(peer, name, text_bytes, when)``.
    """

    def __init__(self, port, on_chat=None):
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.peers = []
        self.by_name = {}
        self.on_chat = on_chat or (lambda peer, name, text, when: None)

    def connect(self, count, source=None):
        added = []
        for _ in range(count):
            c = AdvClient(self.port, source=source, timeout=10)
            c.sock.setblocking(False)
            peer = Peer(c.sock, c.name)
            peer.inbuf += c.buffer
            self.peers.append(peer)
            self.by_name[peer.name] = peer
            self.selector.register(c.sock, selectors.EVENT_READ, peer)
            added.append(peer)
        return added

    def send(self, peer, data):
        peer.outbuf += data
        self._flush(peer)

    def _flush(self, peer):
        if peer.outbuf and peer.closed is None:
            try:
                sent = peer.sock.send(peer.outbuf)
            except BlockingIOError:
                sent = 0
            except OSError as e:
                peer.closed = f"send: {e}"
                return
            del peer.outbuf[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.outbuf else 0)
        if peer.closed is None:
            self.selector.modify(peer.sock, events, peer)

    def _read(self, peer, now):
        while True:
            try:
                chunk = peer.sock.recv(1 << 18)
            except BlockingIOError:
                break
            except OSError as e:
                peer.closed = f"recv: {e}"
                break
            if not chunk:
                peer.closed = "eof"
                break
            if peer.count_only is not None:
                self._count(peer, chunk)
            else:
                peer.inbuf += chunk
            if len(chunk) < (1 << 18):
                break
        buf = peer.inbuf
        start = 0
        while True:
            end = buf.find(b"\r\n", start)
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 2
            if line.startswith(b"<"):
                name, sep, text = line[1:].partition(b"> ")
                self.on_chat(peer, name.decode(), text, now)
            else:
                peer.notices.append(line.decode("utf-8", "replace"))
        del buf[:start]
        if peer.closed is not None:
            self.selector.unregister(peer.sock)

    @staticmethod
    def _count(peer, chunk):
        """
        Cheap reading for a crowd: count CRLFs and the pattern, no parsing.
        """
        data = peer._tail + chunk
        keep = max(len(peer.count_only) - 1, 1)
        peer.lines += data.count(b"\r\n") - peer._tail.count(b"\r\n")
        peer.hits += data.count(peer.count_only) - peer._tail.count(peer.count_only)
        peer._tail = data[-keep:]

    def pump(self, seconds, until=None):
        """
        Move bytes for ``seconds`` (or until ``until()`` is true).
        Returns whether ``until`` became true.
        """
        deadline = time.monotonic() + seconds
        while True:
            if until is not None and until():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return until is None
            for key, events in self.selector.select(min(left, 0.05)):
                peer = key.data
                now = time.monotonic()
                if events & selectors.EVENT_READ:
                    self._read(peer, now)
                if events & selectors.EVENT_WRITE and peer.closed is None:
                    self._flush(peer)

    def close(self):
        for peer in self.peers:
            try:
                peer.sock.close()
            except OSError:
                pass
        self.selector.close()
