"""
``ChatFactory``: the listening side of chat mode.  It builds one
``ChatProtocol`` per accepted connection, counted at accept time against
the per-address and total limits and the bans, and holds what the
connections share: the hub, the file store, the accounts, the bans and
mutes, the write coalescer, the live connections and the metrics; and
closes the connections a new ban covers (``close_banned``).
"""

import socket

from twisted.internet import protocol
from twisted.logger import Logger

from chatd import grammar
from chatd.admission import Refusal
from chatd.limits import ConnectionCounter, Limits, address_key
from chatd.metrics import NO_METRICS
from chatd.moderation import Bans, MemoryBanStore, Mutes, covers, remove
from chatd.protocol import ChatProtocol
from chatd.shutdown import LiveConnections
from chatd.outflow import WriteCoalescer


class ChatFactory(protocol.Factory):
    """
    Makes ``ChatProtocol``s sharing one hub and file store, within the
    connection limits.
    """

    protocol = ChatProtocol
    log = Logger()

    def __init__(self, hub, store, clock, server_name=None, limits=None,
                 accounts=None, coalesce_writes=False, bans=None, metrics=None):
        self.accounts = accounts
        self.bans = bans if bans is not None else Bans(MemoryBanStore(), clock)
        self.bans.factory = self  # a ban made on another node closes our connections
        self.mutes = Mutes(clock)
        self.live = LiveConnections()
        self.closing = False  # shutting down: refuse new connections
        self.metrics = metrics if metrics is not None else NO_METRICS
        # One transport write per connection per reactor pass (the daemon);
        # off, every line is written at once (unit tests read it at once).
        self.coalescer = WriteCoalescer(clock) if coalesce_writes else None
        self.hub = hub
        self.store = store
        self.clock = clock
        self.server_name = grammar.clean_text(server_name or f"chatd on {socket.gethostname()}")
        self.limits = limits or Limits()
        self.connections = ConnectionCounter(self.limits.max_conns_per_ip,
                                             self.limits.max_conns)
        self.metrics.watch(self)

    def buildProtocol(self, addr):
        host = getattr(addr, "host", "") or ""
        key = address_key(host)
        refusal = self.connections.refusal(key)
        reason = "limit"
        if refusal is None:
            refusal, reason = self.admission_refusal(host), "banned"
        if refusal is not None:
            self.log.info("refused {peer}: {why}", peer=key, why=refusal)
            self.metrics.refused("shutdown" if self.closing else reason)
            return Refusal(refusal)
        p = protocol.Factory.buildProtocol(self, addr)
        p.address_key = key
        self.connections.opened(key)
        self.live.add(p)
        self.metrics.accepted()
        return p

    def admission_refusal(self, host):
        """
        Why a connection from ``host`` may not come in, besides the
        connection limits (shutting down, a ban), or ``None``.
        """
        return "server shutting down" if self.closing else self.bans.refusal(host)

    def close_banned(self, ban, name, spare=None):
        """
        Close the connections ``ban`` covers (logged in to its account, a
        guest going by its name, or from its address), but ``spare``,
        telling each the operator ``name`` banned it; a list of them.
        """
        why = f"banned by {name}" + (f": {ban.reason}" if ban.reason else "")
        gone = [p for p in list(self.live) if p is not spare and _covered(ban, p)]
        for p in gone:
            remove(p, why, "banned")
        return gone

    def connection_closed(self, p):
        if p.address_key is not None:
            self.connections.closed(p.address_key)
            p.address_key = None
        self.live.closed(p)


def _covered(ban, p):
    if ban.kind == "address":
        try:
            return covers(ban.target, p.transport.getPeer().host)
        except Exception:  # no transport, or no address
            return False
    return p.account == ban.target or \
        (p.name is not None and grammar.name_key(p.name) == ban.target)
