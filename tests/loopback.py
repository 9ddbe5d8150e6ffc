"""
Helpers for the loopback tests: connect named users to a real daemon, read
everything already sent to them, and move files the way ``nc`` does.
"""

import hashlib
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from chatd import grammar

ADMIN = str(Path(sys.executable).with_name("chatd-admin"))


def sha(data):
    return hashlib.sha256(data).hexdigest()


def settle(clients):
    """
    Read every line already sent to each client, up to an answer to
    ``/who`` that counts exactly these clients (the daemon fixture's
    readiness probe may still be leaving).
    """
    for c in clients:
        deadline = time.monotonic() + 5
        while True:
            c.say("/who")
            line = c.expect("- online (")
            if line.startswith(f"- online ({len(clients)}):"):
                break
            assert time.monotonic() < deadline, line
            time.sleep(0.05)


def users(daemon, *names):
    """
    Connect one client per name (``None``: stay a guest), renamed, settled.
    """
    clients = [daemon.client() for _ in names]
    for c, name in zip(clients, names):
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if name:
            c.nick(name)
    settle(clients)
    return clients


def admin(data_dir, *args):
    """
    Run ``chatd-admin --data-dir DATA_DIR ARGS`` as a user would.
    """
    return subprocess.run([ADMIN, "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=30)


def register(client, name, password="secret1"):
    client.say(f"/register {name} {password}")
    assert client.expect("*** registered") == f"*** registered and logged in as {name}"
    client.name = name


def make_operator(daemon, client, name="boss"):
    """
    Register ``client`` as ``name`` and make it an operator with chatd-admin.
    """
    register(client, name)
    done = admin(daemon.data_dir, "make-operator", name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"{name} is now an operator\n"
    return client


def upload_bytes(name, data, checksum=None):
    header = f"/upload {name} {len(data)}" + (f" {checksum}" if checksum else "") + "\n"
    return header.encode("utf-8") + data


def upload(client, name, data, checksum=None):
    """
    Send ``/upload`` and the bytes at once, as ``(echo ...; cat f) | nc``
    does; returns the server's answer.
    """
    client.send(upload_bytes(name, data, checksum))
    return client.expect(lambda l: l.startswith(("*** stored ", "! ")))


def download(client, name):
    """
    ``/download NAME``: the parsed header line and exactly its bytes.
    """
    client.say(f"/download {name}")
    header = grammar.parse_server_line(client.answer(raw=True))
    assert header.kind == "file", header
    return header, client.read_exact(header.size)


def reset(client):
    """
    Drop the connection with a TCP RST, as a crashed peer does.
    """
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()


def lines_until_closed(client, timeout=5):
    """
    Every line the server sends until it closes the connection.
    """
    lines = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            lines.append(client.line(max(0.01, deadline - time.monotonic())))
        except ConnectionError:
            return lines
