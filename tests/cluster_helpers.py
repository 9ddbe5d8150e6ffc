"""
Users spread over several nodes of a cluster, and reading what they see.
"""

import socket
import subprocess
import time

from daemon import Client
from loopback import ADMIN, register


def who(client):
    """
    The names ``/who`` lists for ``client`` (lines before the answer are
    skipped).
    """
    client.say("/who")
    line = client.expect("- online (")
    listed = line.split(": ", 1)[1] if ": " in line else ""
    return sorted(n for n in listed.split(", ") if n)


def settle(clients, timeout=10):
    """
    Read what is already sent to each client, up to a ``/who`` that lists
    exactly these clients, on every node.
    """
    expected = sorted(c.name for c in clients)
    for c in clients:
        deadline = time.monotonic() + timeout
        while who(c) != expected:
            assert time.monotonic() < deadline, (c.name, who(c), expected)
            time.sleep(0.05)


def users(*placed):
    """
    ``users((node, "alice"), (node2, None), ...)``: one client per pair,
    renamed (``None``: stays a guest), all settled.
    """
    clients = []
    for node, name in placed:
        c = node.client()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if name:
            c.nick(name)
        clients.append(c)
    settle(clients)
    return clients


def lines_until(client, marker):
    """
    Every line ``client`` gets before (and not including) ``marker``: say
    ``/who`` first to bound what arrived.
    """
    client.say("/who")
    out = []
    while True:
        line = client.line()
        if line.startswith(marker):
            return out
        out.append(line)


def synced(sender, *receivers):
    """
    Wait until each of ``receivers`` has heard everything ``sender``'s
    node published for ``sender`` so far: a node's bus messages arrive in
    the order it sent them, so a private message sent now comes after.
    Returns the lines the receivers got before it (the last receiver's).
    """
    for receiver in receivers:
        sender.say(f"/msg {receiver.name} sync")
        before = receiver.lines_until(f"[private] <{sender.name}> sync")[:-1]
        sender.expect(f"[private to {receiver.name}]")
    return before


def who_in(client, room):
    """
    ``(count, sorted names)`` that ``/who #ROOM`` lists for ``client``.
    """
    client.say(f"/who #{room}")
    line = client.expect(lambda line: line.startswith("- online"))
    count = int(line.split(" (", 1)[1].split(")", 1)[0])
    listed = line.split("): ", 1)[1] if "): " in line else ""
    return count, sorted(n for n in listed.split(", ") if n)


def cluster_operator(redis, node, name="boss"):
    """
    A client on ``node`` registered as ``name`` and made an operator of the
    cluster on ``redis`` (``chatd-admin --redis URL make-operator``).
    """
    client = node.client()
    register(client, name)
    made = subprocess.run([ADMIN, "--redis", redis.url, "make-operator", name],
                          capture_output=True, text=True, timeout=30)
    assert (made.returncode, made.stdout) == (0, f"{name} is now an operator\n"), made
    return client


def refused(node, source):
    """
    The one line a connection from ``source`` is told before it is closed.
    """
    client = Client(node.port, greet=False, source=source)
    line = client.line()
    assert client.closed()
    return line


def no_traceback(*nodes):
    for node in nodes:
        assert node.proc.poll() is None
        assert "Traceback" not in node.log()
