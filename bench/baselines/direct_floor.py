"""
The real floor for big rooms: what a Twisted broadcast server can do at
best.  ``twisted_floor.py``'s server, but each recipient's lines of a
reactor pass are joined and sent with ``socket.send()`` at the end of the
pass when its transport holds no bytes; only the unsent rest goes to
``transport.write()`` (no epoll registration per recipient per pass, which
is what ``transport.write()`` to an idle socket costs).
Usage: ``python direct_floor.py PORT [BACKLOG]``.
"""

from twisted.internet import reactor
from twisted_floor import Floor, serve

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


class DirectFloor(Floor):
    def connectionLost(self, reason):
        Floor.connectionLost(self, reason)
        pending.pop(self, None)

    def broadcast(self, data):
        for client in self.factory.clients:
            if client is not self:
                lines = pending.get(client)
                if lines is None:
                    pending[client] = [data]
                else:
                    lines.append(data)
        if not scheduled:
            scheduled.append(reactor.callLater(0, flush))


if __name__ == "__main__":
    serve(DirectFloor)
