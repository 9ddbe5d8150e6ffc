"""
The Redis keys and channels of one cluster, and the Lua scripts that change
names and node liveness atomically.

A name is a field of one hash: name key -> ``NODE|SINCE|NAME`` (the node
holding it, when it took it, how it is spelled).  Each node also lists its
name keys in a set, so a dead node's names can be found and released.  Pub/sub
channels are not per database, so every key and channel carries the
database number: two clusters can share a Redis by using different DBs.
"""


class Keys:
    def __init__(self, db):
        self.prefix = f"chatd:{db}:"
        self.names = self.prefix + "names"  # hash: name key -> NODE|SINCE|NAME
        self.nodes = self.prefix + "nodes"  # set of registered node ids
        self.guests = self.prefix + "guests"  # the guest number counter
        self.lobby = self.prefix + "room:lobby"  # channel: the lobby's lines
        self.bans = self.prefix + "bans"  # hash: ban target -> JSON (cluster/bans.py)

    def heartbeat(self, node):
        return f"{self.prefix}node:{node}"  # expires unless the node renews it

    def node_names(self, node):
        return f"{self.prefix}node:{node}:names"  # set of the node's name keys

    def inbox(self, node):
        return f"{self.prefix}node:{node}:inbox"  # channel: lines for one node


def holder(node, since, name):
    return f"{node}|{since!r}|{name}"


# Shared by the scripts: who holds a hash value.
_OWNER = """
local function owner(value)
  if not value then return nil end
  return string.match(value, '^([^|]*)|')
end
"""

# KEYS: names, this node's set.  ARGV: node, key, holder value.
# Take the name unless another node holds it: 1 taken, 0 held elsewhere.
CLAIM = _OWNER + """
local held = owner(redis.call('HGET', KEYS[1], ARGV[2]))
if held and held ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS: names, this node's set.  ARGV: node, keys...
# Let go of names this node holds (a name another node took stays theirs).
RELEASE = _OWNER + """
for i = 2, #ARGV do
  if owner(redis.call('HGET', KEYS[1], ARGV[i])) == ARGV[1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
  redis.call('SREM', KEYS[2], ARGV[i])
end
return 1
"""

# KEYS: names, this node's set, guest counter.  ARGV: node, key prefix,
# guest floor, then triples (key, since, holder value).
# (Re-)register this node's names after the link came back, or take a
# registered name at login (since = -1 wins).  A name another node also holds
# goes to whoever took it first (then the lower node id): the same answer
# whichever node asks first.  A node that loses a name to us is told on its
# inbox; the names we lose are returned.
REGISTER = _OWNER + """
local lost = {}
for i = 4, #ARGV, 3 do
  local key, since, value = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local current = redis.call('HGET', KEYS[1], key)
  local other = owner(current)
  local ours = true
  if other and other ~= ARGV[1] then
    local their_since = tonumber(string.match(current, '^[^|]*|([^|]*)|')) or 0
    ours = since < their_since or (since == their_since and ARGV[1] < other)
    if ours then
      redis.call('SREM', ARGV[2] .. 'node:' .. other .. ':names', key)
      redis.call('PUBLISH', ARGV[2] .. 'node:' .. other .. ':inbox',
        cjson.encode({v = 2, node = ARGV[1], kind = 'taken', to = key}))
    end
  end
  if ours then
    redis.call('HSET', KEYS[1], key, value)
    redis.call('SADD', KEYS[2], key)
  else
    table.insert(lost, key)
  end
end
local floor = tonumber(ARGV[3])
if floor > (tonumber(redis.call('GET', KEYS[3])) or 0) then
  redis.call('SET', KEYS[3], floor)
end
return lost
"""

# KEYS: names.  ARGV: node, key, key prefix, message.
# Publish a private message on the inbox of the node holding the name key;
# returns the recipient's name, or nil when nobody anywhere has it.
PRIVATE = _OWNER + """
local current = redis.call('HGET', KEYS[1], ARGV[2])
local other = owner(current)
if not other or other == ARGV[1] then return nil end
redis.call('PUBLISH', ARGV[3] .. 'node:' .. other .. ':inbox', ARGV[4])
return string.match(current, '^[^|]*|[^|]*|(.*)$')
"""

# KEYS: nodes set, names.  ARGV: key prefix, lobby channel, reason, node id
# or ''.  Release every name of each node whose heartbeat expired (or of the
# node given: a clean stop), publishing each user's departure once, for that
# node, and forget its users' rooms (``presence``); returns the nodes
# released.  Atomic, so among all the nodes running it exactly one announces
# each departure.
REAP = _OWNER + """
local released = {}
local nodes = redis.call('SMEMBERS', KEYS[1])
if ARGV[4] ~= '' then nodes = {ARGV[4]} end
for _, node in ipairs(nodes) do
  if ARGV[4] ~= '' or redis.call('EXISTS', ARGV[1] .. 'node:' .. node) == 0 then
    local set = ARGV[1] .. 'node:' .. node .. ':names'
    for _, key in ipairs(redis.call('SMEMBERS', set)) do
      local current = redis.call('HGET', KEYS[2], key)
      if owner(current) == node then
        redis.call('HDEL', KEYS[2], key)
        redis.call('PUBLISH', ARGV[2], cjson.encode({v = 2, node = node,
          kind = 'left', name = string.match(current, '^[^|]*|[^|]*|(.*)$'),
          reason = ARGV[3]}))
      end
    end
    redis.call('DEL', set, ARGV[1] .. 'node:' .. node, ARGV[1] .. 'node:' .. node .. ':rooms')
    redis.call('SREM', KEYS[1], node)
    table.insert(released, node)
  end
end
return released
"""
