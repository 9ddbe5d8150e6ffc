"""
``send_now`` (direct socket writes, issue 13) as a unit: a real Twisted
``tcp.Connection`` on a fake socket whose ``send`` takes what each test says,
a ``MemoryReactor`` to see whether Twisted would wait for writability.
"""

import errno

import pytest
from twisted.internet import main, protocol, task, tcp
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.internet.ssl import optionsForClientTLS

from chatd import outflow, transfer
from chatd.sendnow import send_now


class FakeSocket:
    """
    ``send`` takes at most ``take`` bytes per call (``None``: all), or raises
    the errors queued in ``raises`` first.
    """

    def __init__(self, take=None, raises=()):
        self.take = take
        self.raises = list(raises)
        self.sent = b""
        self.calls = 0

    def setblocking(self, flag):
        pass

    def fileno(self):
        return 99

    def send(self, data):
        self.calls += 1
        if self.raises:
            raise self.raises.pop(0)
        data = bytes(data)
        n = len(data) if self.take is None else min(self.take, len(data))
        self.sent += data[:n]
        return n


def connection(sock, proto=None):
    reactor = MemoryReactorClock()
    t = tcp.Connection(sock, proto or protocol.Protocol(), reactor)
    t.connected = 1
    return t, reactor


def buffered(t):
    return t.dataBuffer[t.offset:] + b"".join(t._tempDataBuffer)


def test_everything_taken_goes_straight_out():
    sock = FakeSocket()
    t, reactor = connection(sock)
    send_now(t, b"hello\r\n")
    assert sock.sent == b"hello\r\n"
    assert buffered(t) == b""
    assert t not in reactor.writers  # no epoll registration at all


def test_partial_send_buffers_only_the_rest_in_order():
    sock = FakeSocket(take=3)
    t, reactor = connection(sock)
    send_now(t, b"abcdefgh")
    assert sock.sent == b"abc"
    assert buffered(t) == b"defgh"
    assert t in reactor.writers
    send_now(t, b"ij")  # Twisted holds bytes now: behind them, not around
    assert sock.sent == b"abc"
    sock.take = None
    t.doWrite()
    assert sock.sent == b"abcdefghij"
    assert t not in reactor.writers


@pytest.mark.parametrize("code", [errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS])
def test_would_block_buffers_everything(code):
    sock = FakeSocket(raises=[BlockingIOError(code, "busy")])
    t, reactor = connection(sock)
    send_now(t, b"line\r\n")
    assert sock.sent == b""
    assert buffered(t) == b"line\r\n"
    assert t in reactor.writers


def test_interrupted_send_is_retried():
    sock = FakeSocket(raises=[InterruptedError(errno.EINTR, "interrupted")])
    t, _ = connection(sock)
    send_now(t, b"line\r\n")
    assert sock.calls == 2
    assert sock.sent == b"line\r\n"
    assert buffered(t) == b""


@pytest.mark.parametrize("code", [errno.EPIPE, errno.ECONNRESET])
def test_error_is_left_for_twisted_to_meet(code):
    """
    The bytes go to Twisted's buffer; its own send meets the error and
    reports the loss, so the connection ends on its usual path, once.
    """
    sock = FakeSocket(raises=[OSError(code, "gone"), OSError(code, "gone")])
    t, reactor = connection(sock)
    send_now(t, b"line\r\n")
    assert buffered(t) == b"line\r\n"
    assert t in reactor.writers
    assert t.doWrite() is main.CONNECTION_LOST


def test_bytes_already_buffered_are_never_overtaken():
    sock = FakeSocket()
    t, _ = connection(sock)
    t.write(b"first\r\n")
    send_now(t, b"second\r\n")
    assert sock.calls == 0
    assert buffered(t) == b"first\r\nsecond\r\n"


class WaitingProducer:
    """
    A pull producer between two chunks (a file read not back yet).
    """

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


def test_a_file_being_sent_keeps_the_socket():
    sock = FakeSocket()
    t, _ = connection(sock)
    t.registerProducer(WaitingProducer(), False)
    send_now(t, b"line\r\n", own_producer=object())
    assert sock.calls == 0
    assert buffered(t) == b"line\r\n"


def test_our_congestion_listener_does_not_count_as_a_producer():
    sock = FakeSocket()
    t, _ = connection(sock)
    flow = outflow.OutputFlow(None)
    t.registerProducer(flow, True)
    send_now(t, b"line\r\n", own_producer=flow)
    assert sock.sent == b"line\r\n"


@pytest.mark.parametrize("state", ["disconnecting", "_writeDisconnecting"])
def test_closing_or_half_closed_goes_through_write(state):
    sock = FakeSocket()
    t, _ = connection(sock)
    setattr(t, state, True)
    send_now(t, b"line\r\n")
    assert sock.calls == 0


def test_tls_transport_is_untouched():
    """
    Over TLS the protocol's transport is the TLS layer: plaintext never
    reaches the socket, whatever the socket would take.
    """
    sock = FakeSocket()
    t, _ = connection(sock)
    factory = TLSMemoryBIOFactory(optionsForClientTLS("localhost"), True,
                                  protocol.Factory.forProtocol(protocol.Protocol))
    tls = factory.buildProtocol(None)
    tls.makeConnection(t)
    send_now(tls, b"secret line\r\n")
    assert b"secret" not in sock.sent + buffered(t)


def test_started_tls_connection_is_untouched():
    sock = FakeSocket()
    t, _ = connection(sock)
    t._tlsClientDefault = True  # what tcp.Client/Server set
    t.startTLS(optionsForClientTLS("localhost"))
    send_now(t, b"secret line\r\n")
    assert b"secret" not in sock.sent + buffered(t)


class Receiver(transfer.TransferReceiver):
    queue_full = 0

    def send_queue_full(self):
        self.queue_full += 1
        transfer.TransferReceiver.send_queue_full(self)


def receiver(sock, sendq=0):
    clock = task.Clock()
    p = Receiver()
    t, reactor = connection(sock, p)
    p.makeConnection(t)
    p.start_output_flow(sendq, outflow.WriteCoalescer(clock))
    return p, t, clock


def test_a_pass_of_lines_is_one_direct_send():
    sock = FakeSocket()
    p, t, clock = receiver(sock)
    p.deliver(b"a\r\n")
    p.deliver(b"b\r\n")
    assert sock.calls == 0
    clock.advance(0)
    assert (sock.calls, sock.sent) == (1, b"a\r\nb\r\n")


def test_send_queue_counts_what_twisted_buffers():
    """
    A reader that takes nothing: the rest lands in Twisted's buffer, its
    congestion signal queues lines here, and past the limit the reader goes.
    """
    sock = FakeSocket(take=0)
    p, t, clock = receiver(sock, sendq=1000)
    t.bufferSize = 100
    for _ in range(200):
        p.deliver(b"x" * 20 + b"\r\n")
        clock.advance(0)
        if p.queue_full:
            break
    assert sock.sent == b""
    assert p.queue_full == 1 and t._aborting
    assert len(buffered(t)) <= t.bufferSize + 22  # then lines queued, bounded
