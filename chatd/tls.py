"""
TLS listeners: the ``ssl:`` strports description for ``--tls-port``, a
check that the certificate and key load, and a wrapper that keeps a
connection out of the chat until its TLS handshake is done, closing it if
the handshake stalls.
"""

import ssl

from twisted.internet.interfaces import IHandshakeListener
from twisted.logger import Logger
from twisted.protocols import policies
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python import usage
from zope.interface import directlyProvides, implementer, providedBy

from chatd.admission import AcceptTimeLimits
from chatd.limits import BACKLOG

HANDSHAKE_TIMEOUT = 30.0


def _escape(value):
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def tls_description(port, cert, key, interface=""):
    """
    The strports description of a TLS listener (Twisted's TLS defaults).
    """
    description = (f"ssl:{port}:privateKey={_escape(key)}:certKey={_escape(cert)}"
                   f":backlog={BACKLOG}")
    if interface:
        description += f":interface={_escape(interface)}"
    return description


def is_tls(description):
    return description.split(":", 1)[0].strip().lower() in ("ssl", "tls")


def check_certificate(cert, key):
    """
    ``usage.UsageError`` unless ``cert`` and ``key`` are readable PEM files
    that belong together.
    """
    for option, path in (("tls-cert", cert), ("tls-key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise usage.UsageError(f"--{option} {path}: {e.strerror}")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise usage.UsageError(
            f"--tls-cert {cert} / --tls-key {key}: not a usable PEM certificate "
            f"and private key ({e})")


@implementer(IHandshakeListener)
class HandshakeFirst(policies.ProtocolWrapper):
    """
    Connects the wrapped protocol only once the TLS handshake completes;
    aborts the connection if it takes longer than the factory's timeout.
    """

    log = Logger()
    _timer = None
    _started = False

    def makeConnection(self, transport):
        directlyProvides(self, providedBy(transport))
        self.transport = transport
        self.connected = 1
        self.factory.registerProtocol(self)
        if isinstance(transport, TLSMemoryBIOProtocol):
            self._timer = self.factory.clock.callLater(self.factory.timeout,
                                                       self._timed_out)
        else:
            self._start()

    def getHandle(self):
        """
        The socket under the TLS layer (for socket options).
        """
        return getattr(self.transport, "transport", self.transport).getHandle()

    def handshakeCompleted(self):
        self._cancel()
        self._start()

    def _start(self):
        if not self._started:
            self._started = True
            self.wrappedProtocol.makeConnection(self)
            if IHandshakeListener.providedBy(self.wrappedProtocol):
                self.wrappedProtocol.handshakeCompleted()

    def _cancel(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self):
        self._timer = None
        peer = self.getPeer()
        self.log.info("closing {peer}: no TLS handshake in {timeout} s",
                      peer=f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}",
                      timeout=self.factory.timeout)
        self.transport.abortConnection()

    def dataReceived(self, data):
        if self._started:
            self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason):
        self._cancel()
        # The wrapped protocol was built (and counted) even if it never
        # connected: let it clean up.
        policies.ProtocolWrapper.connectionLost(self, reason)


class HandshakeFirstFactory(AcceptTimeLimits):
    """
    Wraps the chat factory for a TLS listener: limits apply at accept time
    (a refused connection is closed at once), the chat after the handshake.
    """

    protocol = HandshakeFirst

    def __init__(self, wrapped, clock, timeout=HANDSHAKE_TIMEOUT):
        AcceptTimeLimits.__init__(self, wrapped)
        self.clock = clock
        self.timeout = timeout
