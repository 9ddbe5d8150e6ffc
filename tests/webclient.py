"""
Helpers for the web client's tests: a daemon with ``--web-port``, a
WebSocket user (``websocket-client``, blocking, frames read with timeouts)
and raw HTTP requests.
"""

import http.client
import socket
import time

import websocket

from daemon import Client, free_port


def settle_probe(port):
    """
    Wait until the daemon has seen ``Daemon.start``'s probe connection
    leave, so no test user is told of its departure (we leave by /quit,
    which departs before its answer).
    """
    c = Client(port, greet=False)
    if "you are " not in c.line():  # --require-login: nobody hears of guests
        c.close()
        return
    c.say("/who")
    if not c.expect("- online (").startswith("- online (1)"):
        c.expect(lambda line: line.endswith(" left (connection lost)"))
    c.say("/quit")
    c.expect("*** bye")
    assert c.closed()
    c.close()


def web_daemon(make_daemon, *args):
    """
    A settled daemon that also serves the web client; ``.web_port`` and
    ``.url``.
    """
    port = free_port()
    d = make_daemon("--web-port", str(port), "--web-interface", "127.0.0.1", *args)
    d.web_port = port
    d.url = f"http://127.0.0.1:{port}"
    settle_probe(d.port)
    return d


class WebUser:
    """
    One user on the chat WebSocket: ``line()`` is the next text frame.
    """

    def __init__(self, daemon, origin=None, greet=True, timeout=5.0, **kw):
        """
        Connect (``kw``: more ``websocket.create_connection`` options) and,
        with ``greet``, read the greeting and the guest name in it.
        """
        self.timeout = timeout
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{daemon.web_port}/ws", timeout=timeout,
            origin=origin or daemon.url, **kw)
        self.closed_with = None  # (code, reason) once the server closed
        self.name = None
        if greet:
            greeting = self.line()
            assert greeting.startswith("*** Welcome"), greeting
            self.name = greeting.split("you are ")[1].split(";")[0]

    def frame(self, timeout=None):
        """
        The next data frame: ``str`` for text, ``bytes`` for binary;
        ``ConnectionError`` once the server has closed.
        """
        self.ws.settimeout(timeout or self.timeout)
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError("no frame in time")
            except websocket.WebSocketConnectionClosedException:
                raise ConnectionError(f"closed {self.closed_with}")
            if opcode == websocket.ABNF.OPCODE_TEXT:
                return data.decode("utf-8")
            if opcode == websocket.ABNF.OPCODE_BINARY:
                return bytes(data)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                self.closed_with = (code, data[2:].decode("utf-8", "replace"))
                raise ConnectionError(f"closed {self.closed_with}")

    def line(self, timeout=None):
        frame = self.frame(timeout)
        assert isinstance(frame, str), frame[:100]
        return frame

    def expect(self, predicate, timeout=None):
        """
        Read frames until a line satisfies ``predicate`` (a prefix or a
        callable); returns it.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        skipped = []
        while True:
            line = self.line(max(0.01, deadline - time.monotonic()))
            if line.startswith(predicate) if isinstance(predicate, str) else predicate(line):
                return line
            skipped.append(line)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no match; skipped {skipped}")

    def closed(self, timeout=None):
        """
        Read until the server closes; returns its ``(code, reason)``.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self.frame(max(0.01, deadline - time.monotonic()))
            except ConnectionError:
                return self.closed_with

    def say(self, line):
        self.ws.send(line)

    def send_binary(self, data):
        self.ws.send_binary(data)

    def nick(self, name):
        self.say(f"/nick {name}")
        self.expect(lambda l: l.endswith(f"is now known as {name}"))
        self.name = name

    def close(self):
        self.ws.close(timeout=1)


def http_get(daemon, path, headers=None, method="GET"):
    """
    One request with ``http.client`` (the path is sent as given); returns
    ``(status, headers dict with lower-case names, body)``.
    """
    conn = http.client.HTTPConnection("127.0.0.1", daemon.web_port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        conn.close()


def raw_http(daemon, data, timeout=5.0):
    """
    Send raw bytes to the web port; everything the server answers until it
    closes (or ``timeout``).
    """
    with socket.create_connection(("127.0.0.1", daemon.web_port), timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
