"""
Isolation: a bug while handling one client's line, or one recipient whose
write fails, never affects the other clients.
"""

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from chatd.hub import Hub
from chatd.limits import Limits
from chatd.factory import ChatFactory
from chatd.store import FileStore


class BrokenTransport(StringTransport):
    broken = False

    def write(self, data):
        if self.broken:
            raise OSError("write failed")
        StringTransport.write(self, data)


def _server(tmp_path):
    store = FileStore(tmp_path / "data", blocking=defer.maybeDeferred)
    return ChatFactory(Hub(), store, task.Clock(), server_name="test",
                       limits=Limits(rate=0))


def _connect(factory, port, transport=None):
    p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
    t = transport or StringTransport()
    p.makeConnection(t)
    return p, t


def _lines(t):
    data = t.value()
    t.clear()
    return data.decode().split("\r\n")[:-1]


def _capture_failures():
    failures = []

    def observe(event):
        if event.get("log_failure") is not None:
            failures.append(event)
    globalLogPublisher.addObserver(observe)
    return failures, observe


def test_exception_in_one_clients_line(tmp_path, monkeypatch):
    factory = _server(tmp_path)
    (a, at), (b, bt) = _connect(factory, 1), _connect(factory, 2)
    _lines(at), _lines(bt)
    act = Hub.act

    def buggy(hub, client, text):
        if text == "boom":
            raise RuntimeError("a bug")
        return act(hub, client, text)

    monkeypatch.setattr(Hub, "act", buggy)
    failures, observer = _capture_failures()
    try:
        a.dataReceived(b"/me boom\nstill here\n/me waves\n")
    finally:
        globalLogPublisher.removeObserver(observer)
    assert _lines(at) == ["! internal error; your line was not handled"]
    assert _lines(bt) == [f"<{a.name}> still here", f"* {a.name} waves"]
    assert len(failures) == 1 and failures[0]["log_failure"].check(RuntimeError)
    b.dataReceived(b"hello\n")
    assert _lines(at) == [f"<{b.name}> hello"]


def test_one_recipients_write_fails(tmp_path):
    factory = _server(tmp_path)
    (a, at), (c, ct) = _connect(factory, 1), _connect(factory, 3)
    broken, bt = _connect(factory, 2, BrokenTransport())
    _lines(at), _lines(ct)
    bt.broken = True
    failures, observer = _capture_failures()
    try:
        a.dataReceived(b"hi all\n")
        c.dataReceived(b"/msg " + broken.name.encode() + b" psst\nback\n")
    finally:
        globalLogPublisher.removeObserver(observer)
    assert _lines(ct) == [f"<{a.name}> hi all", f"[private to {broken.name}] psst"]
    assert _lines(at) == [f"<{c.name}> back"]
    assert failures, "a failed write must be logged"
