"""
Downloads on plain TCP with ``os.sendfile``: the kernel copies the stored
file to the socket, no byte passes through Python.

``SendfileProducer`` is a pull producer on the TCP transport, used by
``TransferReceiver.send_file`` (nothing else writes to the connection while
it runs).  The transport asks it for more only once its own buffer is empty
(so the header line and anything before it are out first); it then sends
what the kernel takes, without blocking (the socket is non-blocking), and
when the socket is full it has the transport wait for writability
(``startWriting``), which asks again.  TLS and other transports keep the
chunked ``FileSender`` path.
"""

import os

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IPullProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.sendnow import is_plain_tcp

PASS_BYTES = 8 * 2**20  # at most this much per reactor pass: others get their turn


def can_sendfile(transport, source):
    """
    Whether ``os.sendfile`` can feed ``transport`` (a plain TCP connection)
    from ``source`` (a file with a descriptor).
    """
    if not (hasattr(os, "sendfile") and is_plain_tcp(transport)):
        return False
    try:
        source.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation
        return False
    return True


@implementer(IPullProducer)
class SendfileProducer:
    """
    Send the rest of the open file ``source`` (from its current position to
    its end) to ``transport``'s socket.  ``start()`` returns a Deferred that
    fires when every byte is out, or fails (connection lost, file error).
    """

    def __init__(self, transport, source):
        self.transport = transport
        self._out = transport.getHandle().fileno()
        self._in = source.fileno()
        self.offset = source.tell()
        self.left = os.fstat(self._in).st_size - self.offset
        self._deferred = defer.Deferred()
        self._asked = False

    def start(self):
        self.transport.registerProducer(self, False)
        return self._deferred

    def resumeProducing(self):
        if not self._asked:
            # Called by registerProducer: the header may still be buffered.
            # Once the transport has written it, it asks again.
            self._asked = True
            self.transport.startWriting()
            return
        budget = PASS_BYTES
        while self.left and budget > 0:
            try:
                sent = os.sendfile(self._out, self._in, self.offset, min(self.left, budget))
            except BlockingIOError:
                break  # the socket is full
            except OSError as e:
                self._finish(Failure(e))
                return
            if sent == 0:
                self._finish(Failure(OSError("the file shrank while it was sent")))
                return
            self.offset += sent
            self.left -= sent
            budget -= sent
        if self.left:
            self.transport.startWriting()  # doWrite asks again when writable
        else:
            self._finish(None)

    def stopProducing(self):
        # The connection went away: the transport drops us itself.
        self._finish(Failure(ConnectionLost("the connection was lost mid-file")),
                     unregister=False)

    def _finish(self, result, unregister=True):
        d, self._deferred = self._deferred, None
        if d is None:
            return
        if unregister:
            self.transport.unregisterProducer()
        if result is None:
            d.callback(None)
        else:
            d.errback(result)
