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
