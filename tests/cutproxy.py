"""
A loopback TCP relay that a test can cut: the connection it relays is
closed (both sides) once a chosen number of bytes has gone one way, as a
dropped Wi-Fi does to a transfer.
"""

import socket
import threading


class CutProxy:
    """
    Listens on a free port and relays each connection to ``port``.  The
    first connection is cut after ``upstream`` bytes client→server or
    ``downstream`` bytes server→client; later ones are relayed whole.
    """

    def __init__(self, port, upstream=None, downstream=None):
        self.target = port
        self.limits = {"up": upstream, "down": downstream}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.cut = threading.Event()  # set once the first connection was cut
        self._socks = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._socks += [client, server]
            first = self.connections == 0
            self.connections += 1
            for src, dst, way in ((client, server, "up"), (server, client, "down")):
                limit = self.limits[way] if first else None
                threading.Thread(target=self._pump, args=(src, dst, limit, (client, server)),
                                 daemon=True).start()

    def _pump(self, src, dst, limit, pair):
        moved = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if limit is not None and moved + len(data) >= limit:
                    dst.sendall(data[:limit - moved])
                    self.cut.set()
                    _close(pair)
                    return
                dst.sendall(data)
                moved += len(data)
        except OSError:
            _close(pair)

    def close(self):
        self.listener.close()
        _close(self._socks)


def _close(socks):
    """
    Shut down (which wakes a thread blocked reading it), then close.
    """
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
