"""
The real floor for big rooms: what a Twisted broadcast server can do at
best.  Like ``twisted_floor.py`` (``/nick NAME``; any other line goes to
everyone else as ``<name> text``), but each recipient's lines of a reactor
pass are joined and sent with ``socket.send()`` at the end of the pass when
its transport holds no bytes; only the unsent rest goes to
``transport.write()`` (no epoll registration per recipient per pass, which
is what ``transport.write()`` to an idle socket costs).
Usage: ``python direct_floor.py PORT [BACKLOG]``.
"""

import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver

pending = {}  # recipient -> [lines] of this reactor pass
scheduled = []


def flush():
    del scheduled[:]
    batch = list(pending.items())
    pending.clear()
    for client, lines in batch:
        data = b"".join(lines)
        t = client.transport
        if t.connected and not t._tempDataBuffer and t.offset == len(t.dataBuffer):
            try:
                sent = t.socket.send(data)
            except OSError:
                sent = 0  # EAGAIN or an error: Twisted's write meets it
            data = data[sent:]
        if data:
            t.write(data)


class Floor(LineReceiver):
    delimiter = b"\n"
    name = b"guest"

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        self.factory.clients[self] = None
        self.transport.write(b"*** welcome\r\n")

    def connectionLost(self, reason):
        self.factory.clients.pop(self, None)
        pending.pop(self, None)

    def lineReceived(self, line):
        line = line.rstrip(b"\r")
        if line.startswith(b"/nick "):
            old, self.name = self.name, line[6:]
            self.transport.write(b"*** %s is now known as %s\r\n" % (old, self.name))
            return
        data = b"<%s> %s\r\n" % (self.name, line)
        for client in self.factory.clients:
            if client is not self:
                lines = pending.get(client)
                if lines is None:
                    pending[client] = [data]
                else:
                    lines.append(data)
        if not scheduled:
            scheduled.append(reactor.callLater(0, flush))


factory = protocol.Factory.forProtocol(Floor)
factory.clients = {}
backlog = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
reactor.listenTCP(int(sys.argv[1]), factory, backlog=backlog, interface="127.0.0.1")
reactor.run()
