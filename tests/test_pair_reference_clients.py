"""
Pair mode with clients written the way the assignment's reference clients
are: blocking sockets, one ``recv(1024)`` per expected message, messages sent
with no newline, against a real ``twistd -n chatd --mode pair``.

- The basic client: ``recv(1024)`` once (the confirmation), send one line,
  ``recv(1024)`` once (the order report), close.
- The extra-credit client: a ``recv(1024)`` loop that stops only on a chunk
  that is exactly ``Bye`` (the real one would spin forever on the empty
  read after a close; here that fails the test), while lines are sent from
  another thread.

X and Y connect ``DELAY`` apart and send their first messages in either
order; the keyboard is an event the test sets.
"""

import socket
import threading
import time

import pytest

CONNECTED = {"X": b"Client X has connected.\r\n", "Y": b"Client Y has connected.\r\n"}
WAIT = 10.0  # generous bound on any one expected event
FIRST = {"X": "Alice", "Y": "Bob"}


def report(first, second):
    return f"{first}: {FIRST[first]} received before {second}: {FIRST[second]}\r\n".encode()


class BasicClient(threading.Thread):
    """
    The basic reference client; ``typed`` stands for the keyboard.
    """

    def __init__(self, port, message):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), WAIT)
        self.message = message
        self.typed = threading.Event()
        self.confirmed = threading.Event()
        self.confirmation = self.report = None
        self.start()

    def run(self):
        with self.sock:
            self.confirmation = self.sock.recv(1024)
            self.confirmed.set()
            assert self.typed.wait(WAIT)
            self.sock.send(self.message.encode())
            self.report = self.sock.recv(1024)


class LoopClient(threading.Thread):
    """
    The extra-credit reference client's receiving loop; ``send`` is its
    sending thread (one typed line, no newline).
    """

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), WAIT)
        self.chunks = []
        self.changed = threading.Condition()
        self.start()

    def run(self):
        while True:
            chunk = self.sock.recv(1024)
            with self.changed:
                self.chunks.append(chunk)
                self.changed.notify_all()
            if chunk in (b"Bye", b""):  # b"": the reference client would spin here
                return

    def send(self, text):
        self.sock.send(text.encode())

    def text(self):
        with self.changed:
            return b"".join(self.chunks)

    def wait_for(self, data):
        """
        Wait until the bytes received so far contain ``data``.
        """
        with self.changed:
            assert self.changed.wait_for(lambda: data in b"".join(self.chunks), WAIT), \
                f"{data!r} never came; got {self.chunks!r}"

    def wait_bye(self):
        """
        The loop ended on a chunk that is exactly ``Bye``; then the
        connection is closed.
        """
        self.join(WAIT)
        assert not self.is_alive(), f"still waiting for Bye; got {self.chunks!r}"
        assert self.chunks[-1] == b"Bye", self.chunks
        self.sock.settimeout(WAIT)
        assert self.sock.recv(1024) == b""
        self.sock.close()


def connect_pair(daemon, make, delay):
    """
    X, then ``delay`` seconds later Y; X is sent nothing before Y is there.
    """
    seated = daemon.log().count("Accepted first connection")
    x = make("X")
    daemon.wait_log("Waiting for client Y to connect", seated + 1)
    time.sleep(delay)  # the gap between the two connections is the scenario
    x_early = x.chunks[:] if isinstance(x, LoopClient) else x.confirmation
    y = make("Y")
    assert not x_early, f"X was sent {x_early!r} before Y connected"
    return x, y


def first_messages(daemon, clients, first, send):
    """
    ``first`` types its message; once the server has it, the other does.
    """
    second = "Y" if first == "X" else "X"
    send(clients[first], FIRST[first])
    daemon.wait_log(f"Client {first} sent message: {FIRST[first]}")
    send(clients[second], FIRST[second])
    return second


@pytest.mark.parametrize("delay", [0.2, 2.0])
@pytest.mark.parametrize("first", ["X", "Y"])
def test_basic_flow(pair_daemon, delay, first):
    clients = dict(zip("XY", connect_pair(
        pair_daemon, lambda label: BasicClient(pair_daemon.port, FIRST[label]), delay)))
    for label, client in clients.items():
        assert client.confirmed.wait(WAIT)
        assert client.confirmation == CONNECTED[label]

    def type_line(client, text):
        client.typed.set()

    second = first_messages(pair_daemon, clients, first, type_line)
    for client in clients.values():
        client.join(WAIT)
        assert client.report == report(first, second)
    pair_daemon.wait_log("The server is waiting to receive two connections....", 2)


@pytest.mark.parametrize("delay", [0.2, 2.0])
@pytest.mark.parametrize("first", ["X", "Y"])
def test_extra_credit_flow(pair_daemon, delay, first):
    x, y = connect_pair(pair_daemon, lambda label: LoopClient(pair_daemon.port), delay)
    clients = {"X": x, "Y": y}
    for label, client in clients.items():
        client.wait_for(CONNECTED[label])
        assert client.chunks[0] == CONNECTED[label]  # one recv took all of it
    second = first_messages(pair_daemon, clients, first, LoopClient.send)
    for client in clients.values():
        client.wait_for(report(first, second))
        assert client.chunks[1] == report(first, second)
    x.send("hello from X")
    y.wait_for(b"X: hello from X\r\n")
    y.send("hello from Y")
    x.wait_for(b"Y: hello from Y\r\n")
    clients[second].send("Bye")  # the one who spoke second ends it
    clients[first].wait_for(f"{second}: Bye\r\n".encode())
    for client in clients.values():
        client.wait_bye()
        assert b"*** session over: client %s said Bye\r\n" % second.encode() in client.text()
    pair_daemon.wait_log("The server is waiting to receive two connections....", 2)


@pytest.mark.parametrize("leaving", ["X", "Y"])
def test_extra_credit_client_left_alone_gets_bye(pair_daemon, leaving):
    x, y = connect_pair(pair_daemon, lambda label: LoopClient(pair_daemon.port), 0.2)
    clients = {"X": x, "Y": y}
    staying = clients["Y" if leaving == "X" else "X"]
    staying.wait_for(b"connected.\r\n")
    clients[leaving].sock.shutdown(socket.SHUT_RDWR)
    staying.wait_bye()
    assert f"*** session over: client {leaving} left\r\n".encode() in staying.text()
    clients[leaving].join(WAIT)
    clients[leaving].sock.close()


def test_next_pair_after_extra_credit_session(pair_daemon):
    for n in (1, 2):
        x, y = connect_pair(pair_daemon, lambda label: LoopClient(pair_daemon.port), 0.2)
        y.wait_for(CONNECTED["Y"])
        x.wait_for(CONNECTED["X"])
        x.send("Bye")
        x.wait_bye()
        y.wait_bye()
        pair_daemon.wait_log("The server is waiting to receive two connections....", n + 1)
