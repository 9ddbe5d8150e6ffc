"""
The kernel's share of a slow reader's queue (issue 13).
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
