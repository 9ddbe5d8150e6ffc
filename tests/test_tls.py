"""
TLS listeners against a real daemon, with a certificate made here: chat
between a TLS and a plain user, plain text and stalled handshakes closed
without harming anyone, --no-plain, --listen, and option checking.
"""

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from twisted.python import usage

from chatd.tap import Options
from daemon import Client, free_port


class TLSClient(Client):
    """
    ``Client`` over TLS, trusting only the test's certificate.
    """

    def __init__(self, port, cafile, timeout=5.0, greet=True):
        context = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection(("127.0.0.1", port), timeout)
        Client.__init__(self, port, timeout=timeout, greet=greet,
                        sock=context.wrap_socket(raw, server_hostname="localhost"))


def closed(sock):
    """
    Read until the server closes (or resets) the connection, within 5 s.
    """
    sock.settimeout(5)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def tls_args(certificate, port, timeout="1"):
    cert, key = certificate
    return ("--tls-port", str(port), "--tls-cert", cert, "--tls-key", key,
            "--tls-handshake-timeout", timeout)


def test_chat_between_tls_and_plain_users(make_daemon, certificate):
    port = free_port()
    d = make_daemon(*tls_args(certificate, port))
    secure = TLSClient(port, certificate[0])
    assert secure.sock.version() in ("TLSv1.2", "TLSv1.3")
    plain = d.client()
    secure.nick("alice")
    plain.expect("*** ")
    secure.say("over tls")
    assert plain.expect("<alice>") == "<alice> over tls"
    plain.say("over tcp")
    assert secure.expect("<") == f"<{plain.name}> over tcp"


def test_plain_text_and_stalled_handshakes_are_closed(make_daemon, certificate):
    port = free_port()
    d = make_daemon(*tls_args(certificate, port))
    watcher = d.client()
    secure = TLSClient(port, certificate[0])
    watcher.expect(f"*** {secure.name} joined")
    confused = socket.create_connection(("127.0.0.1", port), 5)
    confused.sendall(b"hello, is this chat?\r\n")
    stalled = socket.create_connection(("127.0.0.1", port), 5)
    started = time.monotonic()
    assert closed(confused)  # a TLS alert at most, then closed
    secure.say("still fine")
    assert watcher.expect("<") == f"<{secure.name}> still fine"
    assert closed(stalled)  # by the handshake timeout
    waited = time.monotonic() - started
    assert 0.8 < waited < 4, waited
    secure.say("and after")
    assert watcher.expect("<") == f"<{secure.name}> and after"
    # Neither ever joined the room.
    watcher.say("/who")
    assert watcher.expect("- online") == f"- online (2): {watcher.name}, {secure.name}"
    assert "Traceback" not in d.log()


def test_no_plain_and_listen(make_daemon, certificate):
    cert, key = certificate
    port, extra = free_port(), free_port()
    listen = f"ssl:{extra}:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    make_daemon(*tls_args(certificate, port), "--no-plain", "--listen", listen,
                port=port)
    one, two = TLSClient(port, cert), TLSClient(extra, cert)
    one.say("hi")
    assert two.expect("<") == f"<{one.name}> hi"


def test_tls_options_are_checked(tmp_path, certificate):
    cert, key = certificate
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    cases = [
        (["--tls-port", "5003"], "--tls-port needs --tls-cert"),
        (["--tls-port", "5003", "--tls-cert", str(tmp_path / "missing.pem")],
         "No such file"),
        (["--tls-port", "5003", "--tls-cert", str(garbage)], "not a usable PEM"),
        (["--tls-port", "5003", "--tls-cert", cert, "--tls-key", str(garbage)],
         "not a usable PEM"),
        (["--tls-cert", cert], "need --tls-port"),
        (["--no-plain"], "nothing to listen on"),
    ]
    for args, message in cases:
        with pytest.raises(usage.UsageError, match=message):
            Options().parseOptions(args)
    options = Options()
    options.parseOptions(["--tls-port", "5003", "--tls-cert", cert, "--tls-key", key,
                          "--listen", "tcp:5010,tcp:5011"])
    assert options["listen"] == ["tcp:5010", "tcp:5011"]


CLIENT = str(Path(sys.executable).with_name("chatd-client"))


def run_client(port, *args, input=b"", cwd=None):
    return subprocess.run(
        [CLIENT, "--host", "localhost", "--port", str(port), *args],
        input=input, capture_output=True, timeout=30, cwd=cwd)


def test_chatd_client_over_tls_asks_for_the_password(make_daemon, certificate, tmp_path):
    port = free_port()
    d = make_daemon(*tls_args(certificate, port), "--hash-memory", "8K")
    watcher = d.client()
    result = run_client(port, "--tls", "--ca", certificate[0], cwd=tmp_path,
                        input=b"/register alice\nsecret99\nhello over tls\n")
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, out
    assert "password for alice (not shown):" in out
    assert "*** registered and logged in as alice" in out
    assert "secret99" not in out
    assert watcher.expect("<alice>") == "<alice> hello over tls"
    assert watcher.expect("*** alice left").startswith("*** alice left")
    # Without --ca the self-signed certificate is not trusted.
    refused = run_client(port, "--tls", cwd=tmp_path, input=b"hi\n")
    assert refused.returncode != 0
    watcher.nothing(0.2)


def test_quit_over_tls_closes(make_daemon, certificate):
    port = free_port()
    make_daemon(*tls_args(certificate, port))
    secure = TLSClient(port, certificate[0])
    secure.say("/quit")
    assert secure.expect("*** bye") == "*** bye"
    started = time.monotonic()
    assert secure.closed()
    assert time.monotonic() - started < 2


def test_an_over_limit_connection_is_closed_at_accept_time_without_a_line():
    """
    The chat protocol is built, and counted, when a TLS connection is
    accepted; one over the limit is closed at once, with nothing written
    (nothing can be read before the handshake).
    """
    from twisted.internet import task
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from chatd.admission import Refusal
    from chatd.hub import Hub
    from chatd.limits import Limits
    from chatd.factory import ChatFactory
    from chatd.tls import HandshakeFirst, HandshakeFirstFactory

    clock = task.Clock()
    chat = ChatFactory(Hub(), None, clock, limits=Limits(max_conns_per_ip=1))
    listener = HandshakeFirstFactory(chat, clock)
    addr = IPv4Address("TCP", "10.0.0.1", 40000)
    assert isinstance(listener.buildProtocol(addr), HandshakeFirst)
    assert chat.connections.by_key == {"10.0.0.1": 1}
    refused = listener.buildProtocol(addr)
    assert isinstance(refused, Refusal)
    transport = StringTransport()
    refused.makeConnection(transport)
    assert transport.disconnecting and transport.value() == b""
    assert chat.connections.by_key == {"10.0.0.1": 1}


def test_pair_mode_over_tls_ends_with_a_lone_bye(make_daemon, certificate):
    """
    The farewell's drain watch over TLS (a pull producer there is driven
    by Twisted's TLS layer, not the socket's buffer): both still get the
    session-over line, then ``Bye`` alone, then the close.
    """
    port = free_port()
    d = make_daemon("--mode", "pair", *tls_args(certificate, port))
    d.wait_log("Client X left before client Y connected")  # the start-up probe
    x = TLSClient(port, certificate[0], greet=False)
    d.wait_log("Accepted first connection, calling it client X", 2)
    y = d.client(greet=False)
    assert (x.line(), y.line()) == ("Client X has connected.", "Client Y has connected.")
    y.say("Bye")
    assert x.line() == "Y: Bye"
    for client in (x, y):
        assert client.line() == "*** session over: client Y said Bye"
        assert client.closed() and client.buffer == b"Bye"


def test_downloads_over_tls_take_the_chunked_path_from_any_offset(make_daemon, certificate):
    """
    ``sendfile`` cannot feed TLS: downloads there go through ``FileSender``,
    whole and from an offset, byte-exact.
    """
    import hashlib
    import os

    port = free_port()
    d = make_daemon(*tls_args(certificate, port))
    data = os.urandom(3 * 2**20 + 11)
    digest = hashlib.sha256(data).hexdigest()
    plain = d.client()
    plain.send(f"/upload t.bin {len(data)}\n".encode() + data)
    assert plain.expect("*** stored t.bin")
    secure = TLSClient(port, certificate[0])
    secure.say("/download t.bin")
    assert secure.answer() == f"FILE {len(data)} {digest} t.bin"
    assert secure.read_exact(len(data), timeout=20) == data
    secure.say("/download-from 1000001 t.bin")
    assert secure.line() == f"PART 1000001 {len(data)} {digest} t.bin"
    assert secure.read_exact(len(data) - 1000001, timeout=20) == data[1000001:]
    secure.say("/who")
    assert secure.line().startswith("- online (")


def test_a_host_tls_cannot_check_is_named_not_a_missing_ca(tmp_path):
    """
    With no --ca, a TLS set-up failure names the host, not "--ca None".
    """
    result = subprocess.run([CLIENT, "--host", "bad host::", "--tls"], capture_output=True,
                            timeout=30, cwd=tmp_path, input=b"")
    err = result.stderr.decode()
    assert result.returncode != 0
    assert err.startswith("chatd-client: --tls to bad host::: cannot set up TLS"), err
    assert "--ca" not in err and "Traceback" not in err
