"""
Hostile WebSocket and HTTP clients of the web listener: every frame type
and handshake abuse gets a clear answer or a clean close, and the other
users, TCP or WebSocket, never notice.
"""

import socket
import time

import pytest
import websocket

from helpers import AdvClient, FAST, rtt, unsafe_in
from test_adv_lines import HOSTILE
from webclient import WebUser, raw_http, web_daemon


def bystanders(d):
    """
    Two TCP users who watch the room.
    """
    a, b = AdvClient(d.port), AdvClient(d.port)
    a.sync()
    b.sync()
    return a, b


def test_hostile_text_frames_relayed_clean(make_daemon, figure):
    d = web_daemon(make_daemon, "--rate", "0")
    watcher, _ = bystanders(d)
    web = WebUser(d)
    sent = 0
    for i, raw in enumerate(HOSTILE):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not a text frame at all: see the next test
        if "\r" in text or "\n" in text:
            web.say(f"m{i:02d} {text}")
            assert web.line().startswith("! a text frame is one line")
            continue
        web.say(f"m{i:02d} {text}")
        web.say(f"/me m{i:02d} {text}")
        sent += 2
    web.say("done")
    received = watcher.raw_until(f"<{web.name}> done".encode())
    assert unsafe_in(received) is None, unsafe_in(received)
    lines = received.decode().split("\r\n")[:-1]
    relayed = [l for l in lines if l.startswith((f"<{web.name}> m", f"* {web.name} m"))]
    assert len(relayed) == sent, lines
    figure("hostile text frames checked", sent)


def test_invalid_utf8_text_frame_closes_only_that_socket(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0")
    watcher, sender = bystanders(d)
    web = WebUser(d)
    watcher.expect(lambda l: l.endswith(f"{web.name} joined"))
    # websocket-client validates what it sends: frame the bad bytes by hand.
    web.ws.send(b"invalid \xff\xfe utf8", opcode=0x1)
    code, _ = web.closed()
    assert code == 1007
    watcher.expect(lambda l: l.endswith(f"{web.name} left (connection lost)"))
    assert rtt(sender, watcher) < FAST


def test_oversized_frame_closes_that_socket_only(make_daemon, figure):
    d = web_daemon(make_daemon, "--rate", "0")
    watcher, sender = bystanders(d)
    web = WebUser(d)
    before = d.rss()
    web.send_binary(b"\0" * (2 * 1024 * 1024))
    code, _ = web.closed()
    assert code == 1009
    assert rtt(sender, watcher) < FAST
    figure("RSS growth after a 2 MiB frame", (d.rss() - before) / 2**20, "MiB")


def test_garbage_frames_each_answered(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0")
    watcher, _ = bystanders(d)
    web = WebUser(d)
    web.send_binary(b"")
    assert web.line().startswith("! binary frame outside an upload")
    web.say("")  # an empty line: ignored, as over TCP
    web.say("\r")
    assert web.line().startswith("! a text frame is one line")
    web.send_binary(b"\x00\xff" * 1000)
    assert web.line().startswith("! binary frame outside an upload")
    web.ws.ping(b"are you there")
    web.say("/upload x.bin 4")
    web.send_binary(b"ab")
    web.say("/quit in the middle")
    assert web.line().startswith("! text frame during an upload")
    web.send_binary(b"cd")
    assert web.expect("*** stored").startswith("*** stored x.bin: 4 bytes")
    web.say("still fine")
    assert watcher.expect(lambda l: "still fine" in l) == f"<{web.name}> still fine"
    assert "Traceback" not in d.log()


def test_stalled_websocket_upload_times_out(make_daemon):
    d = web_daemon(make_daemon, "--upload-timeout", "0.5")
    web = WebUser(d)
    web.say("/upload stuck.bin 100")
    web.send_binary(b"x" * 10)
    assert web.line() == "! upload of stuck.bin timed out after 0.5 s idle; not stored"
    code, reason = web.closed()
    assert code == 4000 and reason.startswith("upload of stuck.bin timed out")


def test_websocket_that_stops_reading_is_dropped_at_sendq(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0", "--sendq", "16K")
    sender = AdvClient(d.port)  # gets no chat (its own lines), only notices
    slow = WebUser(d, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    sender.expect(lambda l: l.endswith(f"{slow.name} joined"))
    gone = f"*** {slow.name} left (not reading: send queue over 16 KiB)"
    flood = ("x" * 1000 + "\n").encode() * 200
    deadline = time.monotonic() + 20
    while True:
        sender.send(flood)
        try:
            sender.expect(gone, timeout=0.2)
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "the stalled WebSocket was never dropped"
    watcher, other = bystanders(d)
    assert rtt(other, watcher) < FAST


def test_websocket_per_address_limit_shared_with_tcp(make_daemon):
    d = web_daemon(make_daemon, "--max-conns-per-ip", "3")
    held = [AdvClient(d.port), WebUser(d), AdvClient(d.port)]
    # Refused when accepted, before its handshake: a 503 saying why.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WebUser(d, greet=False)
    assert refused.value.status_code == 503
    assert refused.value.resp_body.startswith(
        b"! too many connections from your address (limit 3)")
    tcp_refused = AdvClient(d.port, greet=False)
    assert tcp_refused.line().startswith("! too many connections")
    other = AdvClient(d.port, source="127.0.0.2")  # another address is not affected
    assert other.name
    assert held[1].ws.connected


def test_bad_handshakes(make_daemon):
    d = web_daemon(make_daemon)
    no_key = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
             b"Sec-WebSocket-Version: 13\r\n\r\n"
    bad_version = no_key.replace(b"13", b"99").replace(
        b"\r\n\r\n", b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    for request in (no_key, bad_version, b"GET /ws HTTP/1.1\r\n\r\n",
                    b"POST /ws HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"):
        answer = raw_http(d, request)
        assert answer.startswith(b"HTTP/1.1 4"), (request, answer[:200])
        assert b"Traceback" not in answer
    user = WebUser(d)
    user.say("/who")
    assert user.line().startswith("- online (1)")
    assert "Traceback" not in d.log()


def test_silent_web_sockets_over_the_address_limit_are_refused_at_accept(make_daemon, figure):
    """
    Issue 11, hole 2, for the web listener: every connection counts from its
    accept, so 40 silent sockets from one address leave at most the limit
    open; the rest get a 503 and the close at once, and a WebSocket user from
    another address chats meanwhile.
    """
    from test_adv_tls import closed_within

    d = web_daemon(make_daemon, "--max-conns-per-ip", "2")
    watcher = AdvClient(d.port, source="127.0.0.3")
    silent = []
    for _ in range(40):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.connect(("127.0.0.1", d.web_port))
        silent.append(s)
    gone = closed_within(silent, 1.0)
    figure("silent web sockets still open after 1 s", len(silent) - len(gone))
    assert len(silent) - len(gone) <= 2
    own = socket.create_connection(("127.0.0.1", d.web_port), 5, ("127.0.0.2", 0))
    user = WebUser(d, socket=own)  # from another address
    user.say("from the web")
    assert watcher.expect(f"<{user.name}> from the web")
    for s in silent:
        s.close()
    # Closed sockets give their count back: the address may connect again.
    assert WebUser(d).name
    assert "Traceback" not in d.log()
