"""
The Redis keys of the cluster's accounts and login lock-outs, and the Lua
scripts that change them atomically (however many nodes race).

An account is a hash ``PREFIX account:KEY`` (``name``, ``hash``,
``created``, and ``operator`` when it is one); ``PREFIX accounts`` is the
set of every account's name key (what each node loads at link up);
``PREFIX account:KEY:known`` the addresses it last logged in from (a
sorted set by time).  A lock-out subject (a name or an address) has two
sorted sets of attempt tokens by time: its failures, and its attempts in
flight.
"""


class AccountKeys:
    def __init__(self, prefix):
        self.prefix = prefix
        self.accounts = prefix + "accounts"  # set of account name keys
        self.lobby = prefix + "room:lobby"  # channel: where "account" is published

    def account(self, key):
        return f"{self.prefix}account:{key}"

    def known(self, key):
        return f"{self.prefix}account:{key}:known"

    def lock(self, kind, subject):
        """
        ``(failures, in flight)`` keys of a lock-out subject.
        """
        base = f"{self.prefix}lock:{kind}:{subject}"
        return base + ":failed", base + ":held"


# KEYS: the account, the accounts set, the lobby channel.
# ARGV: name key, name, hash, created, the bus message telling the nodes.
# Make the account unless the name key has one: 1 made, 0 taken.  (Redis
# does not undo a script's writes when a later command fails, so the one
# that can fail on a damaged accounts set goes first.)
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'hash', ARGV[3], 'created', ARGV[4])
redis.call('PUBLISH', KEYS[3], ARGV[5])
return 1
"""

# KEYS: the account.  ARGV: the new hash.  Only an account that exists.
SET_HASH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'hash', ARGV[1])
return 1
"""

# KEYS: the account's known addresses.  ARGV: address.  1 known, 0 not.
KNOWN = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
return 0
"""

# KEYS: the account's known addresses.  ARGV: address, now, how many kept.
REMEMBER = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
return 1
"""

# KEYS: the account.  ARGV: '1' operator, '0' not.
# The account's name, or nil if there is none.
SET_OPERATOR = """
local name = redis.call('HGET', KEYS[1], 'name')
if not name then return nil end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'operator', '1')
else
  redis.call('HDEL', KEYS[1], 'operator')
end
return name
"""

# KEYS: name failures, name in flight, address failures, address in flight.
# ARGV: now, cutoff (now - window), limit, token, '1' if the address is
# known to the account (the name's lock is skipped), window in whole seconds.
# As ``LoginLimiter.begin``: {'locked', i, time of the limit-th latest
# failure}, {'busy', i} (i: 1 the name, 3 the address), or {'ok'} with the
# attempt held on both subjects.
BEGIN = """
local limit = tonumber(ARGV[3])
for i = 1, 4 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[2])
end
local first = 1
if ARGV[5] == '1' then first = 3 end
for i = first, 3, 2 do
  local failed = redis.call('ZCARD', KEYS[i])
  if failed >= limit then
    local at = redis.call('ZRANGE', KEYS[i], -limit, -limit, 'WITHSCORES')
    return {'locked', tostring(i), at[2]}
  end
  if failed + redis.call('ZCARD', KEYS[i + 1]) >= limit then
    return {'busy', tostring(i)}
  end
end
for i = 2, 4, 2 do
  redis.call('ZADD', KEYS[i], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[i], ARGV[6])
end
return {'ok'}
"""

# KEYS: as BEGIN.  ARGV: now, token, '1' if it failed, window in whole
# seconds, limit.  The attempt is over: a failure counts on both subjects
# (the latest ``limit`` kept).
END = """
for i = 1, 3, 2 do
  redis.call('ZREM', KEYS[i + 1], ARGV[2])
  if ARGV[3] == '1' then
    redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2])
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(tonumber(ARGV[5]) + 1))
    redis.call('EXPIRE', KEYS[i], ARGV[4])
  end
end
return 1
"""
