"""
The server side of a pair-mode connection (``--mode pair``).

``PairProtocol`` is a ``ChatProtocol`` that never joins the chat hub: it
keeps the framing (``TransferReceiver``), the no-newline fragment rule, the
half-close handling and the limits (line length, send queue, pacing), and
hands each line to the ``Pairing`` policy (chatd/pair.py) instead of the
chat commands.
"""

from twisted.internet import protocol
from zope.interface import implementer

from chatd import grammar
from chatd.pair import IPairClient
from chatd.protocol import ChatFactory, ChatProtocol, _peer_address


@implementer(IPairClient)
class PairProtocol(ChatProtocol):
    """
    One client of a pair.  Every read takes an arrival mark, so a line is
    ordered by when its first byte came, even if it is completed later by
    the fragment timer (a client that sends no newline).
    """

    label = None
    _line_mark = None  # arrival mark of the line being buffered
    _read_mark = None  # arrival mark of the latest read
    _arrived = None  # arrival mark of the line being handled

    @property
    def pairing(self):
        return self.factory.pairing

    def connectionMade(self):
        self.start_connection()
        self.peer = _peer_address(self.transport)
        self.label = self.pairing.join(self)
        self.name = f"client {self.label}" if self.label else "a refused client"

    def connectionLost(self, reason=protocol.connectionDone):
        ChatProtocol.connectionLost(self, reason)  # never joined the hub
        self.pairing.leave(self)

    def dataReceived(self, data):
        self._read_mark = self.pairing.stamp()
        if not self._buffer:
            self._line_mark = self._read_mark
        ChatProtocol.dataReceived(self, data)

    def lineReceived(self, line):
        self._arrived, self._line_mark = self._line_mark, self._read_mark
        ChatProtocol.lineReceived(self, line)

    def handle_line(self, line):
        text = grammar.decode(line.removesuffix(b"\r"))
        if text.strip():
            self.pairing.receive(self, text, self._arrived)


class PairFactory(ChatFactory):
    """
    Makes ``PairProtocol``s sharing one ``Pairing``, within the same
    connection limits as chat (no hub, no file store).
    """

    protocol = PairProtocol

    def __init__(self, pairing, clock, limits=None):
        ChatFactory.__init__(self, None, None, clock, limits=limits)
        self.pairing = pairing

    def startFactory(self):
        self.pairing.start()
