"""
The web listener's HTTP side against a real daemon: the page and its
headers, downloads with ETag and Range, and what is refused (traversal,
unknown paths, bad requests).
"""

import hashlib
import http.client
import ssl

import pytest
import websocket

from daemon import free_port
from loopback import upload
from webclient import http_get, raw_http, web_daemon

STRICT = {
    "content-security-policy": "default-src 'self'",
    "x-content-type-options": "nosniff",
}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def assert_strict(headers):
    for name, value in STRICT.items():
        assert headers.get(name, "").startswith(value), (name, headers)


@pytest.fixture
def web(make_daemon):
    return web_daemon(make_daemon, "--rate", "0")


def test_page_and_its_files(web):
    status, headers, body = http_get(web, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script src="app.js"' in body and b"<script>" not in body
    assert_strict(headers)
    for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css"),
                       ("/favicon.svg", "image/svg+xml"), ("/index.html", "text/html")):
        status, headers, body = http_get(web, path)
        assert status == 200 and headers["content-type"].startswith(kind), path
        assert_strict(headers)
        assert body


TRAVERSALS = [
    "/../setup.cfg", "/%2e%2e/setup.cfg", "/..%2fsetup.cfg", "/%2e%2e%2fsetup.cfg",
    "/static/../../setup.cfg", "/..%5csetup.cfg", "/....//setup.cfg",
    "/%252e%252e/setup.cfg", "/app.js/../../tap.py", "/files/..%2f..%2findex.json",
    "/files/../index.html", "/files/%2e%2e", "/files/.", "/%00", "/app.js%00.png",
    "//etc/passwd", "/./app.js/x", "/files/index.json", "/files/tmp",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_refused(web, path):
    status, headers, body = http_get(web, path)
    assert status in (400, 404), (path, status)
    assert b"Traceback" not in body and b"[tool:pytest]" not in body
    assert_strict(headers) if status == 404 else None


@pytest.mark.parametrize("path", ["/nope", "/ws/x", "/files", "/files/", "/files/a/b",
                                  "/index.html/", "/chatd/web/static/app.js"])
def test_unknown_paths_404(web, path):
    status, headers, body = http_get(web, path)
    assert status == 404, (path, status)
    assert_strict(headers)


def test_bad_requests_get_400_without_traceback(web):
    for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
                    b"GET / HTTP/9.9\r\n\r\n"):
        answer = raw_http(web, request)
        assert answer.startswith(b"HTTP/1.1 400"), (request[:40], answer[:200])
        assert b"Traceback" not in answer
    # A request line over Twisted's 16 KiB is dropped without an answer.
    assert raw_http(web, b"GET " + b"/a" * 20000 + b" HTTP/1.1\r\n\r\n") == b""
    status, headers, body = http_get(web, "/")
    assert status == 200
    # /ws without the upgrade: a clear refusal, not a crash.
    status, headers, body = http_get(web, "/ws")
    assert 400 <= status < 500 and b"Traceback" not in body


def test_download_with_etag_range_and_disposition(web):
    tcp = web.client()
    data = bytes(range(256)) * 400
    name = "résumé \"final\" 100%.bin"
    assert upload(tcp, name, data, sha(data)).startswith("*** stored")
    path = "/files/r%C3%A9sum%C3%A9%20%22final%22%20100%25.bin"
    status, headers, body = http_get(web, path)
    assert status == 200 and body == data
    assert headers["content-length"] == str(len(data))
    assert headers["etag"] == f'"{sha(data)}"'
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"] == (
        "attachment; filename=\"r_sum_ _final_ 100_.bin\"; "
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%20100%25.bin")
    assert_strict(headers)

    status, headers, body = http_get(web, path, {"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000]
    assert headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    status, headers, body = http_get(web, path, {"Range": "bytes=-10"})
    assert status == 206 and body == data[-10:]
    # Resuming with If-Range: the same file resumes, a changed one comes whole.
    status, _, body = http_get(web, path, {"Range": "bytes=5-",
                                           "If-Range": f'"{sha(data)}"'})
    assert status == 206 and body == data[5:]
    status, _, body = http_get(web, path, {"Range": "bytes=5-", "If-Range": '"old"'})
    assert status == 200 and body == data
    status, _, body = http_get(web, path, {"If-None-Match": f'"{sha(data)}"'})
    assert status == 304 and body == b""
    status, _, _ = http_get(web, path, {"Range": f"bytes={len(data) + 5}-"})
    assert status == 416
    status, _, body = http_get(web, "/files/other.bin")
    assert status == 404 and b"Traceback" not in body


def test_https_and_wss_with_the_tls_certificate(make_daemon, certificate):
    cert, key = certificate
    port = free_port()
    d = make_daemon("--web-tls-port", str(port), "--web-interface", "127.0.0.1",
                    "--tls-cert", cert, "--tls-key", key)
    context = ssl.create_default_context(cafile=cert)
    conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=context)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200 and b"app.js" in response.read()
    assert response.getheader("content-security-policy").startswith("default-src 'self'")
    conn.close()
    ws = websocket.create_connection(f"wss://localhost:{port}/ws", timeout=5,
                                     origin=f"https://localhost:{port}",
                                     sslopt={"ca_certs": cert})
    assert ws.recv().startswith("*** Welcome")
    ws.send("/who")
    assert ws.recv().startswith("- online (")
    ws.close()
