"""
A listening endpoint with SO_REUSEPORT (``--reuse-port``): several chatd
nodes on one machine listen on the same port and the kernel spreads the
connections among them.  Twisted's ``tcp:`` endpoint has no such option,
so the socket is made here and handed to ``reactor.adoptStreamPort``.
"""

import socket

from twisted.internet import defer
from twisted.internet.interfaces import IStreamServerEndpoint
from zope.interface import implementer


def reuse_port_supported():
    return hasattr(socket, "SO_REUSEPORT")


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    def __init__(self, reactor, port, interface, backlog):
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.backlog = backlog

    def listen(self, factory):
        return defer.execute(self._listen, factory)

    def _listen(self, factory):
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.interface, self.port))
            sock.listen(self.backlog)
            sock.setblocking(False)
            # adoptStreamPort takes its own copy of the descriptor.
            return self.reactor.adoptStreamPort(sock.fileno(), family, factory)
        finally:
            sock.close()
