"""
Connection limits at accept time, on every listener.

``ChatFactory.buildProtocol`` counts each connection against the
per-address and total limits the moment it is built, and answers one over
a limit with a ``Refusal``.  Plain TCP builds it when the connection is
accepted.  A listener that puts a handshake in front of the chat (TLS, a
WebSocket) wraps the chat factory in an ``AcceptTimeLimits`` subclass, so
the chat protocol is still built, and counted, at accept time, and a
refused connection is closed at once instead of after its handshake.
"""

from twisted.internet import protocol
from twisted.protocols import policies

from chatd import grammar
from chatd.limits import address_key


class Refusal(protocol.Protocol):
    """
    For a connection over a limit: says why in one error line and closes,
    or, where no line can be read yet (``tell=False``: before a TLS or
    WebSocket handshake), closes at once.
    """

    def __init__(self, reason, tell=True):
        self.reason = reason
        self.tell = tell

    def connectionMade(self):
        if self.tell:
            self.transport.write(grammar.encode_line(grammar.error(self.reason)))
            self.transport.loseConnection()
        else:
            self.transport.abortConnection()


class HTTPRefusal(protocol.Protocol):
    """
    ``Refusal`` for an HTTP listener: the reason as a ``503`` response
    (a page's WebSocket sees its handshake fail; ``curl`` shows the line),
    then the close.
    """

    def __init__(self, reason):
        self.reason = reason

    def connectionMade(self):
        body = grammar.encode_line(grammar.error(self.reason))
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.loseConnection()


class AcceptTimeLimits(policies.WrappingFactory):
    """
    A ``WrappingFactory`` for a listener with a handshake before the chat:
    ``protocol`` (a ``ProtocolWrapper``) wraps the chat protocol, built when
    the connection is accepted; a ``Refusal`` is not wrapped but closes the
    connection at once.
    """

    def buildProtocol(self, addr):
        inner = self.wrappedFactory.buildProtocol(addr)
        if isinstance(inner, Refusal):
            inner.tell = False
            return inner
        return self.protocol(self, inner)


class CountedAtAccept(policies.WrappingFactory):
    """
    For a listener whose chat connections are made after some exchange of
    its own (the web site: pages, files, then a WebSocket upgrade): every
    connection counts against the chat factory's per-address and total
    limits from the moment it is accepted, and one over them gets a 503
    and is closed at once.  A connection that becomes a WebSocket keeps its
    count (``hand_over``) until the chat protocol the chat factory builds
    for it counts it instead (``release``), so it counts once.
    """

    def __init__(self, wrapped, connections, log):
        policies.WrappingFactory.__init__(self, wrapped)
        self.connections = connections
        self.log = log

    def buildProtocol(self, addr):
        key = address_key(getattr(addr, "host", "") or "")
        refusal = self.connections.refusal(key)
        if refusal is not None:
            self.log.info("refused {peer}: {why}", peer=key, why=refusal)
            return HTTPRefusal(refusal)
        wrapper = policies.WrappingFactory.buildProtocol(self, addr)
        wrapper.counted_as = key
        self.connections.opened(key)
        return wrapper

    def unregisterProtocol(self, wrapper):
        self.protocols.pop(wrapper, None)  # a handed-over one went already
        release(wrapper, self.connections)


def hand_over(channel):
    """
    The HTTP ``channel`` is becoming a WebSocket: its count moves from our
    wrapper to the transport beneath (TCP or TLS), and the wrapper steps
    out of the way, so the WebSocket is given that transport itself.
    """
    wrapper = channel.transport
    if getattr(wrapper, "counted_as", None) is None or \
            not isinstance(wrapper.factory, CountedAtAccept):
        return
    inner = wrapper.transport
    inner.counted_as, wrapper.counted_as = wrapper.counted_as, None
    wrapper.factory.protocols.pop(wrapper, None)
    channel.transport = inner


def release(transport, connections):
    """
    Stop counting the connection ``transport`` stands for (see
    ``CountedAtAccept``; anything else: nothing to do), once.
    """
    key = getattr(transport, "counted_as", None)
    if key is not None:
        transport.counted_as = None
        connections.closed(key)
