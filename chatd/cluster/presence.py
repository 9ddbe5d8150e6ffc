"""
The Redis side of presence: which rooms each node's users are in, and the
rooms' topics.

Each node keeps its users' rooms in a hash of its own (name key ->
``NAME ROOM ROOM ...``; names and room names have no spaces), written on
the commands connection *before* the bus message that tells of the change,
so a snapshot taken after any message was heard includes it, and one asked
for before is followed by the message (``RemoteUsers`` replays it).  The
hash is rewritten whole when the node (re-)registers, and deleted with the
node's names when its heartbeat expires (``scripts.REAP``).

Topics are one hash for the cluster (room key -> ``ROOM TOPIC``), set by
the node where ``/topic`` was typed, in one script that also keeps at most
``max_topics`` of them (the longest unchanged go first).

Nothing read back is trusted: an entry that is not a valid name, room or
topic is logged and skipped.
"""

from twisted.logger import Logger

from chatd import grammar
from chatd.cluster import bus

# KEYS: the nodes set.  ARGV: key prefix.  Every node's memberships:
# node, name key, value, node, name key, value, ...
SNAPSHOT = """
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local all = redis.call('HGETALL', ARGV[1] .. 'node:' .. node .. ':rooms')
  for i = 1, #all, 2 do
    out[#out + 1] = node
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
"""

# KEYS: this node's memberships.  ARGV: name key, value, ...
REPLACE = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""

# KEYS: topics hash, their order (a sorted set by time set).  ARGV: room
# key, value, time, most topics kept.
SET_TOPIC = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, key in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    redis.call('ZREM', KEYS[2], key)
    redis.call('HDEL', KEYS[1], key)
  end
end
return 1
"""


def rooms_key(keys, node):
    return f"{keys.prefix}node:{node}:rooms"  # hash: name key -> NAME ROOM ...


def membership(name, rooms):
    return " ".join([name, *rooms])


def parse_membership(node, key, value):
    """
    ``(node, name, rooms)`` from a memberships hash entry, or ``None``.
    """
    if not all(isinstance(s, str) for s in (node, key, value)) or not bus.NODE_ID.match(node):
        return None
    name, *rooms = value.split(" ")
    try:
        bus.check_fields("enter", name=name)
        for room in rooms:
            bus.check_fields("enter", room=room)
    except bus.Malformed:
        return None
    return (node, name, rooms) if grammar.name_key(name) == key else None


def parse_topic(key, value):
    """
    ``(room, topic)`` from a topics hash entry, or ``None``.
    """
    if not isinstance(value, str):
        return None
    room, _, text = value.partition(" ")
    try:
        bus.check_fields("topic", room=room, text=text)
    except bus.Malformed:
        return None
    return (room, text) if text and grammar.room_key(room) == key else None


class Presence:
    """
    This node's memberships and the cluster's topics, through ``link``.
    """

    log = Logger()

    def __init__(self, link, keys, node, max_topics):
        self.link, self.keys, self.node = link, keys, node
        self.max_topics = max_topics
        self.mine = rooms_key(keys, node)
        self.topics_key = keys.prefix + "topics"  # hash: room key -> ROOM TOPIC
        self.topics_order = keys.prefix + "topics:order"  # sorted set: key by time set

    def _quietly(self, d):
        """
        A write that may fail: the link is down, and the whole hash is
        written again when it is back.
        """
        return d.addErrback(lambda f: None)

    def place(self, name, rooms):
        """
        ``name`` (on this node) is in ``rooms`` (their names).
        """
        return self._quietly(self.link.call("hset", self.mine, grammar.name_key(name),
                                            membership(name, rooms)))

    def unplace(self, name):
        return self._quietly(self.link.call("hdel", self.mine, grammar.name_key(name)))

    def replace(self, placed):
        """
        This node's memberships are exactly ``placed`` (``(name, rooms)``).
        """
        args = []
        for name, rooms in placed:
            args += [grammar.name_key(name), membership(name, rooms)]
        return self.link.call("eval", REPLACE, [self.mine], args)

    def snapshot(self):
        """
        Every node's users and their rooms: a ``Deferred`` list of
        ``(node, name, rooms)``.
        """
        def parse(flat):
            flat = list(flat or [])
            return self._valid("memberships",
                               map(parse_membership, flat[::3], flat[1::3], flat[2::3]))
        d = self.link.call("eval", SNAPSHOT, [self.keys.nodes], [self.keys.prefix])
        return d.addCallback(parse)

    def set_topic(self, room, text, when):
        return self._quietly(self.link.call(
            "eval", SET_TOPIC, [self.topics_key, self.topics_order],
            [grammar.room_key(room), f"{room} {text}", repr(when), str(self.max_topics)]))

    def topics(self):
        """
        A ``Deferred`` list of ``(room, topic)``.
        """
        d = self.link.call("hgetall", self.topics_key)
        return d.addCallback(lambda mapping: self._valid(
            "topics", (parse_topic(key, value) for key, value in (mapping or {}).items())))

    def _valid(self, what, entries):
        entries = list(entries)
        bad = entries.count(None)
        if bad:
            self.log.warn("skipped {count} malformed {what} in redis", count=bad, what=what)
        return [entry for entry in entries if entry is not None]
