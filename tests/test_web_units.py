"""
The web client's pure pieces and options: origins, the download name
header, the ``--web-*`` options and the listeners ``makeService`` adds.
"""

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from chatd import tap
from chatd.web.files import content_disposition
from chatd.web.origins import check_origin, origin_allowed


def parse(*args):
    options = tap.Options()
    options.parseOptions(list(args))
    return options


def test_same_origin_by_default():
    assert origin_allowed("http://chat.lan:8080", "chat.lan:8080", frozenset())
    assert origin_allowed("HTTP://Chat.LAN:8080", "chat.lan:8080", frozenset())
    assert not origin_allowed("http://chat.lan:8081", "chat.lan:8080", frozenset())
    assert not origin_allowed("http://evil.example", "chat.lan:8080", frozenset())
    assert not origin_allowed("null", "chat.lan:8080", frozenset())
    assert not origin_allowed("http://chat.lan:8080", "", frozenset())
    assert origin_allowed(None, "chat.lan:8080", frozenset())  # not a browser
    assert not origin_allowed("http://[::1", "chat.lan:8080", frozenset())  # malformed


def test_listed_origins():
    allowed = frozenset([check_origin("https://Chat.Example.org/")])
    assert allowed == {"https://chat.example.org"}
    assert origin_allowed("https://chat.example.org", "other:80", allowed)
    assert not origin_allowed("http://chat.example.org", "other:80", allowed)
    assert origin_allowed("http://anything", "other:80", frozenset(["*"]))


@pytest.mark.parametrize("bad", ["chat.example.org", "ftp://x", "https://", "https://x/path",
                                 "https://x:99999", "https://u@x", "https://x?q", "javascript:1"])
def test_bad_origins(bad):
    with pytest.raises(ValueError):
        check_origin(bad)
    with pytest.raises(usage.UsageError, match="--web-origin"):
        parse("--web-port", "8080", "--web-origin", bad)


def test_content_disposition():
    assert content_disposition("a.txt") == \
        "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"
    assert content_disposition('é "x"\\%.bin') == \
        "attachment; filename=\"_ _x___.bin\"; filename*=UTF-8''%C3%A9%20%22x%22%5C%25.bin"


def test_web_options():
    options = parse()
    assert options.web_descriptions() == []
    options = parse("--web-port", "8080", "--web-interface", "127.0.0.1",
                    "--web-listen", "ssl:8443:privateKey=k.pem:certKey=c.pem",
                    "--web-origin", "https://a.example", "--web-origin", "*")
    assert options.web_descriptions() == [
        "tcp:8080:interface=127.0.0.1:backlog=4096", "ssl:8443:privateKey=k.pem:certKey=c.pem"]
    assert options["web-origin"] == ["https://a.example", "*"]


@pytest.mark.parametrize("args, message", [
    (["--web-port", "70000"], "--web-port must be from 0 to 65535"),
    (["--web-interface", "127.0.0.1"], "need --web-port, --web-tls-port or --web-listen"),
    (["--web-origin", "*"], "need --web-port, --web-tls-port or --web-listen"),
    (["--web-tls-port", "8443"], "--web-tls-port needs --tls-cert"),
    (["--web-port", "8080", "--mode", "pair"], "needs --mode chat"),
])
def test_bad_web_options(args, message):
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


def test_make_service_listens_for_the_web(tmp_path):
    reactor = MemoryReactorClock()
    options = parse("--data-dir", str(tmp_path), "--port", "5002", "--interface", "127.0.0.1",
                    "--web-port", "8080", "--web-interface", "127.0.0.1")
    service = tap.makeService(options, reactor)
    service.startService()
    try:
        ports = sorted(port for port, *_ in reactor.tcpServers)
        assert ports == [5002, 8080]
        site = next(f for port, f, *_ in reactor.tcpServers if port == 8080)
        chat = next(f for port, f, *_ in reactor.tcpServers if port == 5002)
        assert site.connections is chat.connections  # counted from accept, with TCP's
        assert site.wrappedFactory.sockets.chat is chat  # one hub, one set of limits
    finally:
        service.stopService()
