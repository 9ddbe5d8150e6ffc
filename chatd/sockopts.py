"""
Socket options for a chat connection: no Nagle delay, keepalive probes, and
the kernel's share of a slow reader's queue (issue 13); and its peer's
address for the log.
"""

import socket

UNLIMITED = 0  # TCP_NOTSENT_LOWAT 0: the system default (no limit)


def limit_unsent(transport, size):
    """
    Let the kernel hold at most about ``size`` bytes this connection has
    not sent yet (``TCP_NOTSENT_LOWAT``; ``UNLIMITED``: lift it).

    Why not ``SO_SNDBUF``: a reader that stopped has a closed window, so all
    it is owed is unsent, and this caps exactly that (autotuning otherwise
    lets it grow to ~4 MiB per stalled peer, outside our RSS), while bytes
    in flight to a live reader stay unlimited; a fixed ``SO_SNDBUF`` would
    also cap those and switch autotuning off for good.  Lifted while a file
    is sent, so downloads keep the kernel's full pace.  Quietly nothing
    where the platform or transport has no such socket option.
    """
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    try:
        handle = transport.getHandle()
        if option is not None:
            handle.setsockopt(socket.IPPROTO_TCP, option, size)
    except (AttributeError, OSError):
        pass


def peer_address(transport):
    """
    ``HOST:PORT`` of the peer, for the log (``?`` where there is none).
    """
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:
        return "?"


KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 6}


def tune_socket(transport):
    """
    TCP_NODELAY (chat is latency-bound) and keepalive probes, so a peer that
    vanished without a FIN is found within about two minutes.
    """
    try:
        transport.setTcpNoDelay(True)
        transport.setTcpKeepAlive(True)
        handle = transport.getHandle()
    except (AttributeError, OSError):
        return
    for option, value in KEEPALIVE.items():
        if hasattr(socket, option):
            try:
                handle.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
            except OSError:
                pass
