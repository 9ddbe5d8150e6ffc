"""
The small objects that watch a connection's output for ``TransferReceiver``:
``OutputFlow`` hears the transport's congestion, ``Drain`` says when its
buffer has emptied, and ``WriteCoalescer`` makes a reactor pass's lines to
a connection one write.  None of them writes: the protocol does.
"""

from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.logger import Logger
from zope.interface import implementer


@implementer(IPushProducer)
class OutputFlow:
    """
    Registered on the transport as a streaming producer only to hear its
    congestion signals; the protocol does the writing.
    """

    __slots__ = ("protocol",)

    def __init__(self, protocol):
        self.protocol = protocol

    def pauseProducing(self):
        self.protocol._output_paused()

    def resumeProducing(self):
        self.protocol._output_resumed()

    def stopProducing(self):
        self.protocol._drop_queue()


@implementer(IPullProducer)
class Drain:
    """
    A pull producer that writes nothing: a TCP transport asks it for more
    (``resumeProducing``) when its buffer has emptied, which is the signal.
    A call from ``registerProducer`` itself, before ``armed``, is not one.
    (Over TLS a pull producer is driven by a timer, so it fires early.)
    """

    def __init__(self, transport, callback):
        self.transport = transport
        self.callback = callback
        self.armed = False

    def resumeProducing(self):
        if not self.armed or self.callback is None:
            return
        callback, self.callback = self.callback, None
        self.transport.unregisterProducer()  # or it would hold a close back
        callback()

    def stopProducing(self):
        self.callback = None


class WriteCoalescer:
    """
    Collects the connections delivered to during one reactor pass and, at
    its end, has each write its lines to its transport once: a line to a
    big room costs a list append per member instead of a trip through the
    transport's write path each.
    """

    log = Logger()

    def __init__(self, clock):
        self.clock = clock
        self._pending = []
        self._call = None
        self.passes = 0  # flushes, and connections written in them (metrics)
        self.writes = 0

    def mark(self, protocol):
        self._pending.append(protocol)
        if self._call is None:
            self._call = self.clock.callLater(0, self.flush)

    def flush(self):
        self._call = None
        pending, self._pending = self._pending, []
        self.passes += 1
        self.writes += len(pending)
        for protocol in pending:
            try:
                protocol.flush_pending()
            except Exception:
                self.log.failure("writing to {name} failed",
                                 name=getattr(protocol, "name", "?"))
