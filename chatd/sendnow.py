"""
Send a connection's coalesced bytes on its socket at once, when that
keeps their order (issue 13).
"""

from twisted.internet import tcp


def is_plain_tcp(transport):
    """
    Whether ``transport`` is Twisted's own TCP connection with nothing
    wrapped around it (TLS, a WebSocket): the only kind whose socket chatd
    writes to itself (``send_now``, ``os.sendfile``).
    """
    return isinstance(transport, tcp.Connection) and not getattr(transport, "TLS", False)


def send_now(transport, data, own_producer=None):
    """
    Write ``data`` to ``transport``, sending what the kernel takes right away
    when the transport holds nothing, and hand only the unsent rest to
    ``transport.write()``.

    Why: ``transport.write()`` to an idle Twisted TCP socket costs an
    ``epoll_ctl`` to start watching for writability, a reactor pass, the
    ``send``, then another ``epoll_ctl`` to stop; per recipient per pass,
    that is most of a big room's latency.  asyncio's transports try the send
    at once; this does the same.

    Invariants:

    - Order: the socket is written directly only while Twisted holds no byte
      for it (nothing in its buffers), no producer but ``own_producer`` (our
      congestion listener) is registered (a file being sent registers its
      own), and it is neither closing nor half-closed.  Else, or for any
      transport but a plain ``tcp.Connection`` (TLS wraps it, WebSocket is
      another object), everything goes through ``transport.write()``.
    - Accounting: the send queue and congestion watch see exactly what Twisted
      buffers, as before: the unsent rest.
    - Errors: ``EINTR`` is retried; ``EAGAIN``/``EWOULDBLOCK``/``ENOBUFS``
      leaves everything for ``transport.write()``; any other error (``EPIPE``,
      ``ECONNRESET``) does too, so Twisted's own write meets it and ends the
      connection through its one connection-lost path (the departure is
      announced once, by ``connectionLost``).
    """
    if (is_plain_tcp(transport) and transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnecting
            and not transport._tempDataBuffer
            and transport.offset == len(transport.dataBuffer)
            and (transport.producer is None or transport.producer is own_producer)):
        while True:
            try:
                sent = transport.socket.send(data)
                break
            except InterruptedError:
                continue
            except OSError:  # EAGAIN, or an error Twisted's write will meet
                sent = 0
                break
        if sent == len(data):
            return
        if sent:
            data = data[sent:]
    transport.write(data)
