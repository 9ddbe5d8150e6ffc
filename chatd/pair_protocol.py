"""
The server side of a pair-mode connection (``--mode pair``).

``PairProtocol`` is a ``ChatProtocol`` that never joins the chat hub: it
keeps the framing (``TransferReceiver``), the no-newline fragment rule, the
half-close handling and the limits (line length, send queue, pacing), and
hands each line to the ``Pairing`` policy (chatd/pair.py) instead of the
chat commands.  At the end of a session it writes the session-over line and
then ``Bye``, each only once the earlier bytes have left and a short pause
has passed (``farewell``), so a blocking client's ``recv()`` takes each
alone.
"""

from twisted.internet import protocol
from zope.interface import implementer

from chatd import grammar
from chatd.pair import IPairClient
from chatd.factory import ChatFactory
from chatd.protocol import ChatProtocol
from chatd.sockopts import peer_address

# Once the earlier bytes have left, wait this long before each last write,
# so the client's read of them has returned before it comes.
FAREWELL_PAUSE = 0.25
# A client that does not read its last lines within this is cut off.
FAREWELL_TIMEOUT = 30.0


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
    _farewell = None  # the _Farewell, once the session is over

    @property
    def pairing(self):
        return self.factory.pairing

    def connectionMade(self):
        self.start_connection()
        self.peer = peer_address(self.transport)
        self.label = self.pairing.join(self)
        self.name = f"client {self.label}" if self.label else "a refused client"

    def connectionLost(self, reason=protocol.connectionDone):
        ChatProtocol.connectionLost(self, reason)  # never joined the hub
        if self._farewell is not None:
            self._farewell.cancel()
        self.pairing.leave(self)

    def farewell(self, *writes):
        """
        Write each of ``writes`` alone, once everything before it has left
        and ``FAREWELL_PAUSE`` has passed, then close.
        """
        if self._farewell is None and self._connected and not self.transport.disconnecting:
            self._farewell = _Farewell(self, list(writes))

    def close_when_sent(self):
        """
        Close once sent, unless a farewell is on its way (it closes).
        """
        if self._farewell is None:
            ChatProtocol.close_when_sent(self)

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


class _Farewell:
    """
    A pair client's last writes, each alone: wait until the transport has
    drained, pause, write one; after the last, close.  A client that has not
    read them within ``FAREWELL_TIMEOUT`` is cut off.
    """

    def __init__(self, protocol, writes):
        self.protocol = protocol
        self.writes = writes
        clock = protocol.factory.clock
        self.pause = None
        self.timeout = clock.callLater(FAREWELL_TIMEOUT, self.cut_off)
        protocol.when_drained(self.drained)

    def drained(self):
        self.pause = self.protocol.factory.clock.callLater(FAREWELL_PAUSE, self.write)

    def write(self):
        protocol = self.protocol
        protocol.deliver(self.writes.pop(0))  # straight out: the flow watch is over
        if self.writes:
            protocol.when_drained(self.drained)
        else:
            self.timeout.cancel()
            ChatProtocol.close_when_sent(protocol)

    def cut_off(self):
        self.protocol.log.info("{name} did not read its last lines; cut off",
                               name=self.protocol.name)
        self.protocol.transport.abortConnection()

    def cancel(self):
        for call in (self.pause, self.timeout):
            if call is not None and call.active():
                call.cancel()


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
