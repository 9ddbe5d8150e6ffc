"""
The TLS listener under a flood of silent connections: the per-address limit
holds at accept time, before any handshake.
"""

import selectors
import socket
import ssl
import time

from daemon import Client, free_port
from helpers import AdvClient, rtt


def tls_client(port, cafile, source):
    """
    A greeted ``Client`` over TLS from ``source``.
    """
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind((source, 0))
    raw.settimeout(5)
    raw.connect(("127.0.0.1", port))
    context = ssl.create_default_context(cafile=cafile)
    sock = context.wrap_socket(raw, server_hostname="localhost")
    return Client(port, sock=sock)


def closed_within(socks, seconds):
    """
    Which of ``socks`` the server closes (EOF or reset) within ``seconds``.
    """
    selector = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    gone = set()
    deadline = time.monotonic() + seconds
    while len(gone) < len(socks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in selector.select(left):
            try:
                data = key.fileobj.recv(4096)
            except (ConnectionResetError, BlockingIOError) as e:
                if isinstance(e, BlockingIOError):
                    continue
                data = b""
            if not data:
                gone.add(key.fileobj)
                selector.unregister(key.fileobj)
    selector.close()
    return gone


def test_silent_tls_sockets_over_the_address_limit_are_closed_at_once(
        make_daemon, certificate, figure):
    cert, key = certificate
    tls_port = free_port()
    d = make_daemon("--max-conns-per-ip", "2", "--tls-port", str(tls_port),
                    "--tls-cert", cert, "--tls-key", key,
                    "--tls-handshake-timeout", "30")
    watcher = AdvClient(d.port, source="127.0.0.3")
    silent = []
    for _ in range(40):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.connect(("127.0.0.1", tls_port))
        silent.append(s)
    gone = closed_within(silent, 1.0)
    figure("silent TLS sockets still open after 1 s", len(silent) - len(gone))
    assert len(silent) - len(gone) <= 2
    # A legitimate TLS user from another address chats meanwhile.
    user = tls_client(tls_port, cert, "127.0.0.2")
    assert rtt(user, watcher) < 1.0
    assert rtt(watcher, user) < 1.0
    for s in silent:
        s.close()
    assert "Traceback" not in d.log()
