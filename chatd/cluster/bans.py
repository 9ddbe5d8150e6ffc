"""
The cluster's bans (``--redis``): ``RedisBanStore`` keeps them in one Redis
hash, ``PREFIX bans``: target -> the JSON object ``{"until", "reason",
"by"}`` (the strings a ``ban`` bus message carries; ``by`` is the
operator's name), and ``ClusterBans`` is each node's ``Bans``: the same
synchronous cache the accept and login paths check, kept in step with it.

- At each link up (after the node subscribed, so nothing is missed) the
  node loads the whole hash.  A ban it did not hold yet (made while it was
  cut off) closes the connections it covers here, as one heard would.
- ``/ban`` and ``/unban`` are one Lua script each: the hash changes and the
  ``ban`` or ``unban`` message is published in the same step, so every
  other node hears of it one Redis round trip later, updates its cache and
  closes its own connections the ban covers (``ChatFactory.close_banned``).
  The command answers once Redis has it; while the link is down it fails
  with the link-down error and every cache keeps what it last loaded.
- Expiry is each node's, on its clock, as on one node; a node that sees a
  ban run out deletes it from the hash unless it was replaced meanwhile.
- A record no node wrote (a target not in normal form, a value that is not
  the JSON a node writes) is logged and skipped, never loaded.
"""

import json

from twisted.logger import Logger
from zope.interface import implementer

from chatd import grammar
from chatd.cluster import bus
from chatd.cluster.link import refused
from chatd.grammar import ChatError
from chatd.moderation import Ban, Bans, IBanStore, parse_target

FIELDS = ("until", "reason", "by")
MAX_RECORD = bus.MAX_MESSAGE  # characters: as long as a ban message may be
DAMAGED = "the bans in redis are damaged; an operator must repair them"

# KEYS: the bans hash, the lobby channel.  ARGV: target, record, the ``ban``
# message.  (The write that fails on a damaged hash goes first: Redis does
# not undo a script's writes when a later command fails.)
SAVE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
"""

# KEYS: the bans hash, the lobby channel.  ARGV: target, the ``unban``
# message.  Returns the record lifted, or nil.  Published even if there was
# none: a node that still holds the ban (a stale cache) lets it go.
DELETE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return old
"""

# KEYS: the bans hash.  ARGV: target, the until of the ban that ran out.
# Deletes the record only if it is still that ban (not one made since).
EXPIRE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local ok, record = pcall(cjson.decode, raw)
if ok and type(record) == 'table' and record['until'] == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def until_text(until):
    return "forever" if until is None else repr(float(until))


def ban_of(target, until, reason, by):
    """
    The ``Ban`` in checked fields (as a ``ban`` message carries them).
    """
    kind, _ = parse_target(target)
    return Ban(target, kind, None if until == "forever" else float(until), reason,
               grammar.name_key(by))


def encode_record(ban, name):
    return json.dumps(dict(until=until_text(ban.until), reason=ban.reason, by=name),
                      ensure_ascii=False, separators=(",", ":"))


def parse_record(target, raw):
    """
    ``(Ban, the operator's name)`` from a field and value of the hash, or
    ``None`` if they are not exactly what a node writes.
    """
    if not (isinstance(target, str) and isinstance(raw, str) and len(raw) <= MAX_RECORD):
        return None
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or set(record) != set(FIELDS):
        return None
    try:
        bus.check_fields("ban", target=target, **record)
    except bus.Malformed:
        return None
    return ban_of(target, **record), record["by"]


class ClusterBans(Bans):
    """
    ``Bans`` whose changes go through the cluster's ``RedisBanStore``:
    ``add`` and ``remove`` answer with Deferreds, once Redis has them.
    """

    def __init__(self, store, clock):
        Bans.__init__(self, store, clock)
        store.cache = self

    def add(self, target, until, reason, by, name=None):
        kind, key = parse_target(target)
        ban = Ban(key, kind, until, reason, by)
        d = self.store.save(ban, name or by)
        return d.addCallback(lambda _: self.learn(ban) or ban)

    def remove(self, target, by=None):
        try:
            _, key = parse_target(target)
        except ChatError:
            return None
        d = self.store.delete(key, by or "")
        return d.addCallback(lambda old: self.forget(key) or self.store.lifted(key, old))

    def ran_out(self, ban):
        self.forget(ban.target)
        self.store.expire(ban)

    def reload(self, loaded):
        """
        Hold exactly the bans ``loaded`` (target -> ``(Ban, name)``); the
        ones not held before, still in force, close what they cover here.
        """
        held = dict(self._bans)
        for key in held.keys() - loaded.keys():
            self.forget(key)
        fresh = [(ban, name) for ban, name in loaded.values() if held.get(ban.target) != ban]
        for ban, _ in fresh:
            self.learn(ban)
        self._expire()
        for ban, name in fresh:
            self.enforce(ban, name)

    def enforce(self, ban, name):
        """
        Close this node's connections ``ban`` (by ``name``) covers, if it
        is in force.
        """
        if self.factory is not None and self._bans.get(ban.target) == ban and \
                not ban.expired(self.clock.seconds()):
            self.factory.close_banned(ban, name)


@implementer(IBanStore)
class RedisBanStore:
    """
    The bans hash of the ``ClusterHub`` given (which it tells of link ups
    and of the ``ban`` and ``unban`` messages other nodes publish).
    """

    log = Logger()

    def __init__(self, hub):
        self.hub = hub
        self.key = hub.keys.bans
        self.cache = None  # the ClusterBans, once made
        self._meanwhile = None  # while a load is under way: what was heard since
        hub.bans = self

    # --- IBanStore ----------------------------------------------------------

    def load(self):
        return []  # nothing before the link is up: loaded at each link up

    def save(self, ban, name=None):
        name = name or ban.by
        message = bus.encode(self.hub.node, "ban", target=ban.target,
                             until=until_text(ban.until), reason=ban.reason, by=name)
        return self._eval(SAVE, [self.key, self.hub.keys.lobby], ban.target,
                          encode_record(ban, name), message)

    def delete(self, target, by=""):
        message = bus.encode(self.hub.node, "unban", target=target, by=by)
        return self._eval(DELETE, [self.key, self.hub.keys.lobby], target, message)

    def expire(self, ban):
        d = self._eval(EXPIRE, [self.key], ban.target, until_text(ban.until))
        d.addErrback(lambda f: self.log.info(
            "the expired ban on {target} stays in redis for now: {why}",
            target=ban.target, why=f.getErrorMessage()))

    def lifted(self, target, old):
        """
        The ban the record ``old`` held (one this node did not hold), or ``None``.
        """
        parsed = parse_record(target, old) if old is not None else None
        return None if parsed is None else parsed[0]

    def close(self):
        pass

    # --- kept in step ---------------------------------------------------------

    def link_up(self):
        """
        The link is (back) up: load every ban.
        """
        self._meanwhile = []
        d = self._call("hgetall", self.key)
        d.addCallback(self._loaded)
        d.addErrback(self._not_loaded)
        return d

    def _loaded(self, raw):
        loaded = {}
        for target, value in (raw or {}).items():
            parsed = parse_record(target, value)
            if parsed is None:
                self.log.warn("skipped a malformed ban in redis: {target!r}",
                              target=str(target)[:80])
            else:
                loaded[target] = parsed
        heard, self._meanwhile = self._meanwhile or [], None
        for target, parsed in heard:  # newer than what the load read, or the same
            if parsed is None:
                loaded.pop(target, None)
            else:
                loaded[target] = parsed
        self.cache.reload(loaded)
        self.log.info("{count} bans loaded from redis", count=len(loaded))

    def _not_loaded(self, failure):
        self._meanwhile = None
        self.log.warn("bans not loaded from redis (the last ones loaded stay): {why}",
                      why=failure.getErrorMessage())

    def heard_ban(self, node, target, until, reason, by):
        """
        Another node's operator ``by`` banned ``target`` (from the bus: checked).
        """
        ban = ban_of(target, until, reason, by)
        if self._meanwhile is not None:
            self._meanwhile.append((target, (ban, by)))
        self.log.info("operator {operator} on node {sender}: ban {target} ({kind})",
                      operator=by, sender=node, target=target, kind=ban.kind, action="ban")
        self.cache.learn(ban)
        self.cache.enforce(ban, by)

    def heard_unban(self, node, target, by):
        if self._meanwhile is not None:
            self._meanwhile.append((target, None))
        self.log.info("operator {operator} on node {sender}: unban {target}",
                      operator=by, sender=node, target=target, action="unban")
        self.cache.forget(target)

    # --- Redis ----------------------------------------------------------------

    def _eval(self, script, keys, *args):
        return self._call("eval", script, keys, [str(a) for a in args])

    def _call(self, method, *args):
        """
        A Redis command through the hub's link: a ``Deferred``, failing with
        ``ChatError`` when the link is down or Redis refuses it.
        """
        d = self.hub.link.call(method, *args)
        d.addErrback(self.hub._link_failed)
        return d.addErrback(refused, self.log, "a bans", DAMAGED)
