"""
Bans and mutes, free of transports: who may not connect or log in, and
whose lines are refused, until when.

- ``Bans``: by account (name key) or by address or network
  (``ipaddress``: ``203.0.113.7``, ``10.0.0.0/8``, ``2001:db8::/32``), each
  until a time or forever.  Kept in memory for the checks at connect and
  at login, and written through an ``IBanStore`` (``SQLiteBanStore`` under
  ``--data-dir``, ``MemoryBanStore`` for tests) so they outlive a restart;
  with ``--redis``, the cluster's (``chatd.cluster.bans``).
- ``Mutes``: in memory only; by connection, and by account if it is logged
  in (so logging in again does not lift it).
- What an operator's kick, mute and unmute do to a connection on this
  node (``remove``, ``mute``, ``unmute``), through the connection's own
  methods and its factory's mutes, metrics and clock; ``OperatorActions``
  is the hub's side of them (a cluster hub sends them to the user's node).

Time comes from a clock passed in (``seconds()``): the reactor in the
daemon (wall-clock seconds, so stored expiry times stay meaningful across
restarts), a ``task.Clock`` in tests.  Expired entries go at the next look.
"""

import ipaddress
import os
import sqlite3
import weakref
from dataclasses import dataclass
from typing import Optional

from twisted.logger import Logger
from zope.interface import Interface, implementer

from chatd import grammar

BANS_FILE = "bans.sqlite3"
UNMUTED, NOT_MUTED, ASKED = "unmuted", "not muted", "asked"  # what an unmute did
log = Logger()


@dataclass(frozen=True)
class Ban:
    target: str  # an account's name key, or an address or network
    kind: str  # "account" or "address"
    until: Optional[float]  # clock seconds; None: forever
    reason: str
    by: str

    def expired(self, now):
        return self.until is not None and now >= self.until


def parse_target(text):
    """
    ``("address", "10.0.0.0/8")`` for an address or network (normalised),
    else ``("account", name_key)``.  Anything that reads as an address is
    one, even where it would also be a valid name; an IPv4-mapped IPv6
    address is its IPv4 address, as connections from it are seen.
    """
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        if "/" in text or ":" in text:  # never in a name
            raise grammar.ChatError(f"not an address or network: {text} ({e})")
        return "account", grammar.name_key(grammar.check_name(text))
    if network.num_addresses == 1:
        return "address", str(_address(str(network.network_address)))
    return "address", str(network)


def covers(target, host):
    """
    Whether a ban of ``target`` would cover the address ``host``.
    """
    kind, key = parse_target(target)
    return kind == "address" and _within(_address(host), ipaddress.ip_network(key))


def _within(address, network):
    return address is not None and address.version == network.version \
        and address in network


def _address(host):
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class IBanStore(Interface):
    """
    Where bans are kept.  Calls are short and rare (an operator's command).
    """

    def load():
        """
        Every stored ``Ban``.
        """

    def save(ban):
        """
        Add ``ban``, replacing any ban of the same target.
        """

    def delete(target):
        pass

    def close():
        pass


@implementer(IBanStore)
class MemoryBanStore:
    def __init__(self):
        self.bans = {}

    def load(self):
        return list(self.bans.values())

    def save(self, ban):
        self.bans[ban.target] = ban

    def delete(self, target):
        self.bans.pop(target, None)

    def close(self):
        pass


@implementer(IBanStore)
class SQLiteBanStore:
    """
    ``bans.sqlite3`` under the data directory.
    """

    def __init__(self, path):
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS bans (target TEXT PRIMARY KEY,"
            " kind TEXT NOT NULL, until REAL, reason TEXT NOT NULL, by TEXT NOT NULL)")

    @classmethod
    def in_directory(cls, directory):
        os.makedirs(directory, exist_ok=True)
        return cls(os.path.join(directory, BANS_FILE))

    def load(self):
        return [Ban(*row) for row in self._db.execute(
            "SELECT target, kind, until, reason, by FROM bans")]

    def save(self, ban):
        self._db.execute("INSERT OR REPLACE INTO bans VALUES (?, ?, ?, ?, ?)",
                         (ban.target, ban.kind, ban.until, ban.reason, ban.by))

    def delete(self, target):
        self._db.execute("DELETE FROM bans WHERE target = ?", (target,))

    def close(self):
        self._db.close()


class Bans:
    """
    The bans in force, checked at connect (by address) and at login (by
    account).  ``factory``: the ``ChatFactory`` checking them (it says so).
    """

    factory = None

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock
        self._bans = {}  # target -> Ban
        self._networks = {}  # target -> ip_network, for address bans
        for ban in store.load():
            self.learn(ban)
        self._expire()

    def learn(self, ban):  # stored already
        self._bans[ban.target] = ban
        if ban.kind == "address":
            self._networks[ban.target] = ipaddress.ip_network(ban.target)

    def forget(self, key):  # lifted in the store: the ban, or None
        self._networks.pop(key, None)
        return self._bans.pop(key, None)

    def _expire(self):
        now = self.clock.seconds()
        for ban in [b for b in self._bans.values() if b.expired(now)]:
            self.ran_out(ban)

    def ran_out(self, ban):
        self.forget(ban.target)
        self.store.delete(ban.target)

    def add(self, target, until, reason, by, name=None):
        """
        Ban ``target`` (as ``parse_target`` reads it) until ``until``
        (clock seconds, or ``None``: forever), by the operator with name
        key ``by`` (``name``: as they go by).  Returns the ``Ban``.
        """
        kind, key = parse_target(target)
        ban = Ban(key, kind, until, reason, by)
        self.store.save(ban)
        self.learn(ban)
        return ban

    def remove(self, target, by=None):
        """
        Lift the ban on ``target`` (``by``: the operator's name); returns
        it, or ``None`` if there was none.
        """
        try:
            _, key = parse_target(target)
        except grammar.ChatError:
            return None
        ban = self.forget(key)
        if ban is not None:
            self.store.delete(key)
        return ban

    def __iter__(self):
        self._expire()
        return iter(sorted(self._bans.values(), key=lambda b: (b.kind, b.target)))

    def for_address(self, host):
        """
        The ban covering the address ``host``, or ``None``.
        """
        if not self._networks:
            return None
        address = _address(host)
        now = self.clock.seconds()
        for target, network in list(self._networks.items()):
            if _within(address, network):
                ban = self._bans[target]
                if not ban.expired(now):
                    return ban
                self.ran_out(ban)
        return None

    def for_account(self, key):
        """
        The ban on the account with name key ``key``, or ``None``.
        """
        ban = self._bans.get(key)
        if ban is not None and ban.expired(self.clock.seconds()):
            self.ran_out(ban)
            return None
        return ban

    def refusal(self, host):
        """
        What a connection from the address ``host`` is told if a ban
        covers it, else ``None``.
        """
        ban = self.for_address(host)
        return None if ban is None else describe(ban, self.clock)

    def close(self):
        self.store.close()


def describe(ban, clock):
    """
    How a ban is told to the one it refuses:
    ``banned from this server (REASON) for 2h``.
    """
    text = "banned from this server"
    if ban.reason:
        text += f" ({ban.reason})"
    if ban.until is None:
        return text
    return text + f" for {grammar.format_duration(ban.until - clock.seconds())}"


class Mutes:
    """
    Muted connections and accounts, each until a time or forever.
    """

    def __init__(self, clock):
        self.clock = clock
        self._clients = weakref.WeakKeyDictionary()  # client -> until
        self._accounts = {}  # name key -> until

    def mute(self, client, until):
        self._clients[client] = until
        if getattr(client, "account", None) is not None:
            self._accounts[client.account] = until

    def unmute(self, client):
        """
        Whether ``client`` was muted.
        """
        was = self.muted(client) is not None
        self._clients.pop(client, None)
        self._accounts.pop(getattr(client, "account", None), None)
        return was

    def muted(self, client):
        """
        ``None`` if ``client`` may speak, else until when it is muted
        (``float("inf")``: forever).  Cheap when nobody is muted.
        """
        if not self._clients and not self._accounts:
            return None
        now = self.clock.seconds()
        for table, key in ((self._clients, client),
                           (self._accounts, getattr(client, "account", None))):
            if key in table:
                until = table[key]
                if until is None:
                    return float("inf")
                if now < until:
                    return until
                del table[key]
        return None


# --- what an operator's action does to a connection on this node ----------

def for_how_long(seconds):
    return "forever" if seconds is None else f"for {grammar.format_duration(seconds)}"


def kicked_by(by, reason):
    return f"kicked by {by}" + (f": {reason}" if reason else "")


def remove(client, why, drop):
    """
    Close ``client``'s connection, telling it and everyone in its rooms
    why (past the presence limit too); ``drop`` is the metrics' reason.
    """
    client.send(grammar.notice(f"you were {why}"))
    if client.name is not None:  # connectionLost logs only who was still in
        log.info("{name} disconnected ({why})", name=client.name, why=why)
    client.leave(why, announce=True)
    client.factory.metrics.client_dropped(drop)
    client.close_when_sent()


def mute(client, by, seconds):
    """
    Refuse ``client``'s lines for ``seconds`` (``None``: forever), and tell it.
    """
    clock = client.factory.clock
    client.factory.mutes.mute(client, None if seconds is None else clock.seconds() + seconds)
    client.send(grammar.notice(f"you were muted by {by} {for_how_long(seconds)}; "
                               f"you can still read"))


def unmute(client, by):
    """
    Let ``client`` speak again, telling it: ``UNMUTED``, or ``NOT_MUTED``.
    """
    if not client.factory.mutes.unmute(client):
        return NOT_MUTED
    client.send(grammar.notice(f"{by} unmuted you"))
    return UNMUTED


class OperatorActions:
    """
    A mixin of ``chatd.hub.Hub``: the operators' actions on a user (as
    ``find`` gave it) and the wall, on one node.  A cluster hub
    (``chatd.cluster.moderation``) sends them to the user's node instead.
    """

    def kick(self, target, by, reason=""):
        """
        Close ``target``'s connection: ``by`` kicked it.  Its name.
        """
        name = target.name
        remove(target, kicked_by(by, reason), "kicked")
        return name

    def mute(self, target, by, seconds):
        mute(target, by, seconds)

    def unmute(self, target, by):
        """
        ``UNMUTED``, ``NOT_MUTED``, or (a user on another node) ``ASKED``.
        """
        return unmute(target, by)

    def wall(self, by, text):
        """
        ``by``'s notice to everyone online (in a cluster, on every node).
        """
        self.notify(f"notice from {by}: {text}")
