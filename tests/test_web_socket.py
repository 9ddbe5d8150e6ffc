"""
The WebSocket way in, against a real daemon: frames are lines both ways,
the same hub as TCP users, uploads as binary frames, and the limits of a
TCP connection.
"""

import hashlib

import pytest
import websocket

from loopback import download, settle, upload
from webclient import WebUser, web_daemon


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_frames_are_lines_both_ways(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0")
    tcp = d.client()
    web = WebUser(d)
    tcp.expect(lambda l: l.endswith(f"{web.name} joined"))
    web.nick("webby")
    tcp.nick("ncuser")
    web.say("hello from the browser")
    assert tcp.expect("<webby>") == "<webby> hello from the browser"
    tcp.say("hello from nc")
    assert web.expect("<ncuser>") == "<ncuser> hello from nc"
    web.say("/msg ncuser psst")
    assert web.line() == "[private to ncuser] psst"
    assert tcp.expect("[private]") == "[private] <webby> psst"
    web.say("/who")
    assert web.expect("- online (") == "- online (2): ncuser, webby"
    # One reply frame per line, even when a command answers with several.
    web.say("/help")
    assert web.line() == "- commands:"
    assert web.line().startswith("- TEXT ")


def test_frame_over_max_line_is_refused_and_connection_stays(make_daemon):
    d = web_daemon(make_daemon, "--max-line", "100", "--rate", "0")
    web = WebUser(d)
    web.say("x" * 101)
    assert web.line() == "! line too long (over 100 bytes); discarded"
    web.say("x" * 100)
    web.say("/who")
    assert web.line().startswith("- online (1)")


def test_binary_frame_outside_upload_and_text_with_newline(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0")
    tcp = d.client()
    web = WebUser(d)
    tcp.expect(lambda l: l.endswith("joined"))
    web.send_binary(b"hello\n/nick evil\n")
    assert web.line().startswith("! binary frame outside an upload")
    web.say("one\ntwo")
    assert web.line().startswith("! a text frame is one line")
    web.say("bare\rreturn")
    assert web.line().startswith("! a text frame is one line")
    web.say("after")
    # Nothing of the refused frames reached the room.
    assert tcp.expect("<") == f"<{web.name}> after"


def test_upload_from_websocket_downloaded_over_tcp(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0")
    tcp = d.client()
    web = WebUser(d)
    data = bytes(range(256)) * 3000  # 750 KiB in three frames, one short
    web.say(f"/upload blob.bin {len(data)} {sha(data)}")
    web.send_binary(data[:300000])
    web.send_binary(data[300000:600000])
    web.send_binary(data[600000:])
    assert web.expect("*** stored") == \
        f"*** stored blob.bin: {len(data)} bytes, sha256 {sha(data)}"
    assert tcp.expect(lambda l: "shared blob.bin" in l)
    header, body = download(tcp, "blob.bin")
    assert body == data and header.sha256 == sha(data)


def test_tcp_upload_downloaded_over_websocket(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0")
    tcp = d.client()
    web = WebUser(d)
    data = b"from nc\n" * 5000
    assert upload(tcp, "nc.txt", data, sha(data)).startswith("*** stored")
    web.expect(lambda l: "shared nc.txt" in l)
    web.say("/download nc.txt")
    assert web.line() == f"FILE {len(data)} {sha(data)} nc.txt"
    got = b""
    while len(got) < len(data):
        frame = web.frame()
        assert isinstance(frame, bytes)
        got += frame
    assert got == data
    web.say("/who")
    assert web.expect("- online (").startswith("- online (2)")


def test_upload_text_frame_midway_and_overlong_binary(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0")
    web = WebUser(d)
    web.say("/upload a.bin 10")
    web.send_binary(b"12345")
    web.say("not part of the file")
    assert web.line().startswith("! text frame during an upload")
    web.send_binary(b"67890EXTRA")
    assert web.line().startswith("! binary frame 5 bytes longer than the upload")
    assert web.expect("*** stored").startswith("*** stored a.bin: 10 bytes")
    tcp = d.client()
    assert download(tcp, "a.bin")[1] == b"1234567890"


def test_refused_upload_bytes_are_skipped(make_daemon):
    d = web_daemon(make_daemon, "--rate", "0", "--max-file-size", "1K")
    web = WebUser(d)
    web.say("/upload big.bin 4000")
    assert web.line().startswith("! file too large: big.bin")
    web.send_binary(b"/nick evil\n" * 363 + b"x" * 7)  # 4000 bytes, skipped
    web.say("/who")
    assert web.expect("- online (") == f"- online (1): {web.name}"


def test_origin_checked(make_daemon):
    d = web_daemon(make_daemon, "--web-origin", "https://chat.example.org")
    import websocket
    try:
        WebUser(d, origin="http://evil.example")
    except websocket.WebSocketBadStatusException as e:
        assert e.status_code == 403
    else:
        raise AssertionError("a foreign origin was let in")
    WebUser(d, origin="https://chat.example.org").close()
    WebUser(d).close()  # the page's own origin


def test_connection_limits_count_websockets(make_daemon):
    d = web_daemon(make_daemon, "--max-conns-per-ip", "2")
    tcp = d.client()
    web = WebUser(d)
    settle([tcp, web])
    # Refused when accepted, before any handshake: a 503 saying why.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WebUser(d, greet=False)
    assert refused.value.status_code == 503
    assert refused.value.resp_body.startswith(b"! too many connections from your address")
    web.close()
    tcp.expect(lambda l: l.endswith(f"{web.name} left (connection lost)"))
    WebUser(d).close()  # the slot was given back


def test_pacing_applies_to_frames(make_daemon):
    d = web_daemon(make_daemon, "--rate", "5", "--burst", "2")
    tcp = d.client()
    web = WebUser(d)
    tcp.expect(lambda l: l.endswith("joined"))
    for i in range(6):
        web.say(f"m{i}")
    # All arrive, in order, none dropped (paced, not refused).
    got = [tcp.expect("<").split("> ")[1] for _ in range(6)]
    assert got == [f"m{i}" for i in range(6)]



def test_quit_closes_normally_even_after_an_error(make_daemon):
    d = web_daemon(make_daemon)
    web = WebUser(d)
    web.say("/frobnicate")
    assert web.line().startswith("! unknown command")
    web.say("/quit")
    assert web.line() == "*** bye"
    assert web.closed() == (1000, "")
