"""
The framework floor: the least a Twisted LineReceiver chat can do.

``/nick NAME`` renames (answered to the sender only); any other line goes
to everyone else as ``<name> text``, encoded once and written to each
recipient's transport at once (no coalescing: the naive floor).  No
parsing, no logging.  Usage: ``python twisted_floor.py PORT [BACKLOG]``.
"""

import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class Floor(LineReceiver):
    delimiter = b"\n"
    name = b"guest"

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        self.factory.clients[self] = None
        self.transport.write(b"*** welcome\r\n")

    def connectionLost(self, reason):
        self.factory.clients.pop(self, None)

    def lineReceived(self, line):
        line = line.rstrip(b"\r")
        if line.startswith(b"/nick "):
            old, self.name = self.name, line[6:]
            self.transport.write(b"*** %s is now known as %s\r\n" % (old, self.name))
            return
        self.broadcast(b"<%s> %s\r\n" % (self.name, line))

    def broadcast(self, data):
        for client in self.factory.clients:
            if client is not self:
                client.transport.write(data)


def serve(floor):
    """
    Listen with ``floor`` on the port (and backlog) given on the command line.
    """
    factory = protocol.Factory.forProtocol(floor)
    factory.clients = {}
    backlog = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    reactor.listenTCP(int(sys.argv[1]), factory, backlog=backlog, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    serve(Floor)
