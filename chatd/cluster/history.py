"""
The rooms' history kept in Redis for the whole cluster: ``RedisHistory``,
an ``IHistoryStore`` that stands where ``SQLiteHistory`` stands with
``--redis``.

Each room's lines are one capped list (``history:room:KEY``, oldest first,
at most ``keep`` entries: RPUSH and LTRIM in one Lua call), written once,
by the node where the line was said; the node's hub keeps the lines it
hears from the bus in its rings only (``chatd.cluster.rings``).  A sorted
set ranks the rooms by their last line, and the same call drops the least
active rooms past ``max_rooms``, so Redis holds at most ``max_rooms x
keep`` lines.  Rooms' names (as written) and topics are two hashes beside it.

A write never waits: it goes out on the link's command connection, and
while the link is down (or its queue is full) it is dropped and counted,
never queued.  Everything read back is checked (``decode_entry``): an
entry no chatd node would write is skipped, so junk in Redis never
reaches a user.  No reactor here.
"""

import json
import math

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from chatd import grammar
from chatd.grammar import ChatError
from chatd.history import IHistoryStore

MAX_ENTRY = 16 * 1024  # characters; longer than any line a node keeps
LATEST = 2 ** 33  # seconds since 1970 (year 2242): a time past it is junk

# Shared by the scripts that add lines.  Every key is the cluster's prefix
# (ARGV[1]) and a fixed name, so the scripts take no KEYS: each argument
# costs the reactor thread some microseconds per line.
_ROOMS = """
local prefix = ARGV[1]
local ranking, names, topics = prefix .. 'rooms', prefix .. 'names', prefix .. 'topics'
local function add(room, name, at, most)
  redis.call('ZADD', ranking, at, room)
  redis.call('HSET', names, room, name)
  local extra = redis.call('ZCARD', ranking) - most
  if extra <= 0 then return end
  for _, gone in ipairs(redis.call('ZRANGE', ranking, 0, extra - 1)) do
    redis.call('DEL', prefix .. 'room:' .. gone)
    redis.call('HDEL', names, gone)
    redis.call('HDEL', topics, gone)
    redis.call('ZREM', ranking, gone)
  end
end
"""

# ARGV: history key prefix, room key, time, entry, keep, max rooms, and the
# room's name if it is not its key.  Keep the line, and drop the least
# active rooms past the cap.
APPEND = _ROOMS + """
local list = prefix .. 'room:' .. ARGV[2]
redis.call('RPUSH', list, ARGV[4])
redis.call('LTRIM', list, -tonumber(ARGV[5]), -1)
add(ARGV[2], ARGV[7] or ARGV[2], ARGV[3], tonumber(ARGV[6]))
return 1
"""

# ARGV: history key prefix, room key, name, time of the last entry, keep,
# max rooms, topic, entries...  A node's rings put back a room Redis no
# longer has (Redis restarted empty): only if nobody did it first.
SEED = _ROOMS + """
local list = prefix .. 'room:' .. ARGV[2]
if redis.call('EXISTS', list) == 1 then return 0 end
for i = 8, #ARGV do redis.call('RPUSH', list, ARGV[i]) end
redis.call('LTRIM', list, -tonumber(ARGV[5]), -1)
if ARGV[7] ~= '' then redis.call('HSET', topics, ARGV[2], ARGV[7]) end
add(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[6]))
return 1
"""

# KEYS: ranking, topics.  ARGV: room key, topic.  Only for a ranked room
# (its topic line was just appended), so the hash stays within the cap.
TOPIC = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: names, topics.  ARGV: lines each, list key prefix, room keys...
# Each room: {key, name, topic, {entries...}} (a key of another type, put
# there by hand, reads as no lines).
SNAPSHOT = """
local function field(hash, room)
  if redis.call('TYPE', hash).ok ~= 'hash' then return '' end
  return redis.call('HGET', hash, room) or ''
end
local out = {}
for i = 3, #ARGV do
  local room, lines = ARGV[i], {}
  local list = ARGV[2] .. room
  if redis.call('TYPE', list).ok == 'list' then
    lines = redis.call('LRANGE', list, -tonumber(ARGV[1]), -1)
  end
  out[#out + 1] = {room, field(KEYS[1], room), field(KEYS[2], room), lines}
end
return out
"""
SNAPSHOT_PAGE = 50  # rooms read per call: the reactor decodes one page at a time


def encode_entry(when, line):
    return json.dumps([when, line], ensure_ascii=False, separators=(",", ":"))


def _text(raw):
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return raw if isinstance(raw, str) else None


def _clean(text):
    try:
        text.encode("utf-8")  # no lone surrogates
    except UnicodeEncodeError:
        return False
    return grammar.clean_text(text) == text


def decode_entry(raw):
    """
    ``(time, line)`` from a list entry, or ``None`` if no chatd node wrote it.
    """
    raw = _text(raw)
    if raw is None or len(raw) > MAX_ENTRY:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, list) or len(value) != 2:
        return None
    when, line = value
    if type(when) not in (int, float) or not math.isfinite(when) or not 0 <= when < LATEST:
        return None
    if not isinstance(line, str) or not line or not _clean(line):
        return None
    return float(when), line


def decode_entries(raws):
    entries = (decode_entry(raw) for raw in (raws if isinstance(raws, list) else ()))
    return [entry for entry in entries if entry is not None]


def decode_room(item):
    """
    ``(key, name, topic, lines)`` from one room of ``SNAPSHOT``, or ``None``.
    """
    if not isinstance(item, list) or len(item) != 4:
        return None
    key, name, topic, lines = item
    key, name, topic = _text(key), _text(name), _text(topic)
    try:
        if key is None or grammar.check_room(key) != key or grammar.room_key(key) != key:
            return None
    except ChatError:
        return None
    try:
        if name is None or grammar.check_room(name) != name or grammar.room_key(name) != key:
            name = key
    except ChatError:
        name = key
    if topic is None or len(topic) > grammar.MAX_TOPIC_LENGTH or not _clean(topic):
        topic = ""
    return key, name, topic, decode_entries(lines)


@implementer(IHistoryStore)
class RedisHistory:
    """
    The cluster's store; ``attach`` gives it the hub's link before use.
    """

    log = Logger()

    def __init__(self, keep, max_rooms):
        self.keep = keep  # lines per room
        self.max_rooms = max_rooms
        self.link = None
        self.prefix = None
        self.dropped = 0  # writes not made: the link was down or full

    def attach(self, link, prefix):
        """
        Write through ``link``, under the cluster's key ``prefix``.
        """
        self.link = link
        self.prefix = prefix + "history:"
        self.rooms = self.prefix + "rooms"  # sorted set: room key by last line
        self.names = self.prefix + "names"  # hash: room key -> name as written
        self.topics = self.prefix + "topics"  # hash: room key -> topic
        self.lists = self.prefix + "room:"  # + room key: list of entries
        self._limits = (str(self.keep), str(self.max_rooms))

    def _write(self, script, keys, args):
        d = self.link.call("eval", script, keys, args)
        d.addErrback(self._not_written)

    def _not_written(self, failure):
        self.dropped += 1  # counted, and logged when the link is back

    def load(self, rooms, count):
        """
        Nothing at start: the hub loads its rings whenever the link comes
        up (``snapshot``).
        """
        return []

    def append(self, room, name, when, line):
        args = [self.prefix, room, repr(when), encode_entry(when, line), *self._limits]
        if name != room:
            args.append(name)
        self._write(APPEND, [], args)

    def set_topic(self, room, name, topic):
        self._write(TOPIC, [self.rooms, self.topics], [room, topic])

    def forget(self, room):
        """
        Nothing: a node that makes space for a room drops its own ring; the
        cluster's copy is capped by ``max_rooms`` in Redis.
        """

    def recent(self, room, count):
        return self.link.call("lrange", self.lists + room, -count, -1).addCallback(
            decode_entries)

    @defer.inlineCallbacks
    def snapshot(self, rooms, count):
        """
        A Deferred of ``(key, name, topic, [(time, line), ...])`` of the
        ``rooms`` most active rooms, their last ``count`` lines, the most
        active room first; junk skipped.  Read a page of rooms at a time,
        so neither Redis nor this reactor is held long by one reply.
        """
        keys = yield self.link.call("zrevrange", self.rooms, 0, rooms - 1)
        keys = [k for k in map(_text, keys or []) if k is not None]
        saved = []
        for i in range(0, len(keys), SNAPSHOT_PAGE):
            items = yield self.link.call("eval", SNAPSHOT, [self.names, self.topics],
                                         [str(count), self.lists, *keys[i:i + SNAPSHOT_PAGE]])
            saved += [r for r in map(decode_room, items or []) if r]
        return saved

    def seed(self, room, name, topic, lines):
        """
        Put ``lines`` (``(time, line)`` pairs) back as ``room``'s history if
        Redis has none for it (it restarted empty).
        """
        if not lines:
            return defer.succeed(0)
        d = self.link.call("eval", SEED, [],
                           [self.prefix, room, name, repr(lines[-1][0]), *self._limits,
                            topic or ""] + [encode_entry(when, line) for when, line in lines])
        return d.addErrback(lambda f: self.log.info(
            "history of a room not put back: {why}", why=f.getErrorMessage()))
