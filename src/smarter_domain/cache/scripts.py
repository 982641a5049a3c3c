"""Lua scripts that make the Redis tier coherent (each runs atomically in Redis).

Every entry key ``k`` has a generation token under ``k#gen{k}`` (``generation_key``): the hash
tag puts it in ``k``'s Redis Cluster slot, so one script can touch both, every key a script
touches is declared in KEYS, and the token starts with the namespace like every other key (a
namespace flush drops the tokens too). An invalidation deletes the entry and gives it a new
random token. A loader reads the tokens before it reads the database (creating a missing one),
and its fill is stored only if the token is still the one it read: a reader that loaded a row
before a writer's commit can never put that row back after the writer's invalidation (the
lease idea of "Scaling Memcache at Facebook", with random tokens). A restarted, empty Redis
has no tokens, and a missing token never matches, so a load that straddles a restart is not
stored either.

Anyone who can write to Redis can put anything under these keys: every script reads them with
``redis.pcall`` and a type check, so a hash, a list or an oversized string where a token
belongs is a token that never matches (and is replaced), never a script error.
"""

from __future__ import annotations


def generation_key(key: str) -> str:
    """The generation token of ``key``, in ``key``'s hash slot: Redis Cluster hashes only the
    ``{...}`` part of a key that has one, and the whole of a key that has none. (Cache keys
    never contain braces: ``CacheKeys`` digests any part that has one.)"""
    return key + "#gen{" + key + "}"


def ack_keys(ack: str) -> tuple[str, str, str]:
    """An invalidation's acknowledgement keys, from the key ``<ns>:ack:<32 hex>`` its message
    names: the set of processes that dropped its keys, how many must (the publish's receiver
    count), and the list a writer blocks on until they all have. Each has ``{<ack>}`` as its
    hash tag: the same Redis Cluster slot as ``ack`` itself, which holds the list of origins
    that earlier releases wait on (a listener pushes there too, so the writers of a release
    that is still running during a rolling upgrade get their acknowledgements)."""
    tag = "{" + ack + "}"
    return ack + ":set" + tag, ack + ":n" + tag, ack + ":done" + tag


# Push the "all acknowledged" signal when as many distinct processes as expected have
# acknowledged. Whatever is under these keys (a forger can plant anything) makes it a no-op,
# never a script error: the writer then waits out its timeout, as for a silent process.
_ACKS = """
local function signal_if_done(set, expected, done)
  local n = tonumber(redis.pcall('GET', expected))
  local have = redis.pcall('SCARD', set)
  if not n or type(have) ~= 'number' or have < n then
    return 0
  end
  if type(redis.pcall('RPUSH', done, '1')) == 'number' then
    redis.call('EXPIRE', done, 10)
  end
  return 1
end
local function expect_acks(set, expected, done, receivers)
  redis.call('SET', expected, receivers, 'EX', 10)
  return signal_if_done(set, expected, done)
end
"""

ACK = (
    _ACKS
    + """
-- A listener's acknowledgement. KEYS: ack set, expected, done, ack list (earlier releases)
-- ARGV: the listener's origin
if type(redis.pcall('RPUSH', KEYS[4], ARGV[1])) == 'number' then
  redis.call('EXPIRE', KEYS[4], 10)
end
if type(redis.pcall('SADD', KEYS[1], ARGV[1])) ~= 'number' then
  return 0
end
redis.call('EXPIRE', KEYS[1], 10)
return signal_if_done(KEYS[1], KEYS[2], KEYS[3])
"""
)

EXPECT = (
    _ACKS
    + """
-- After a sharded publish (a cluster): how many acknowledgements its writer waits for.
-- KEYS: ack set, expected, done  ARGV: receivers
return expect_acks(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
"""
)

INVALIDATE = (
    _ACKS
    + """
-- KEYS: entry1, token1, entry2, token2, ..., [ack set, expected, done]
-- ARGV: new token, token ttl, [channel, message, acks]: with acks = '1', the last three KEYS
-- are the invalidation's acknowledgement keys, and the publish's receivers are expected.
local last = #KEYS
if ARGV[5] == '1' then
  last = last - 3
end
for i = 1, last, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', ARGV[2])
end
if ARGV[3] and ARGV[3] ~= '' then
  local receivers = redis.call('PUBLISH', ARGV[3], ARGV[4])
  if ARGV[5] == '1' then
    expect_acks(KEYS[last + 1], KEYS[last + 2], KEYS[last + 3], receivers)
  end
  return receivers
end
return 0
"""
)

MAX_TOKEN_BYTES = 64
"""Tokens are 32 hex characters; anything longer under a token key is foreign."""

# A token as a script reads it: a string of sane length, else false (missing, of another
# Redis type, or oversized).
_READ_TOKEN = f"""
local function token_of(key)
  local token = redis.pcall('GET', key)
  if type(token) ~= 'string' or #token > {MAX_TOKEN_BYTES} then
    return false
  end
  return token
end
"""

GENERATIONS = (
    _READ_TOKEN
    + """
-- KEYS: token1, token2, ...  ARGV: a fresh token for the missing (or foreign) ones, token ttl
local result = {}
for i, key in ipairs(KEYS) do
  local token = token_of(key)
  if not token then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
    token = ARGV[1]
  end
  result[i] = token
end
return result
"""
)


def hold_key(key: str) -> str:
    """The hold-offs of ``key`` (a sorted set: writer's hold id -> expiry, in ms of Redis's
    clock), in ``key``'s hash slot like its token.

    A hold is a write about to commit: while one is live, no fill of the key is stored. Each
    writer adds its own and removes only its own (``HOLD``, ``RELEASE``): a plain
    invalidation, another writer's release, a replay cannot end it. One that is never
    released (its writer killed between its commit and its release) expires. As in "Scaling
    Memcache at Facebook" (NSDI 2013): a delete that leaves a short-lived marker refusing
    fills; here it is placed before the commit."""
    return key + "#hold{" + key + "}"


# Redis's own clock (scripts may read it since Redis 5, effects replication), and whether a
# hold set is live: expired members are dropped; a value of another type is foreign, ignored
# and removed.
MAX_HOLD_MS = 60_000
"""No hold of ours lasts longer (``tiered.HOLD_SECONDS`` is 10 s): a member scored later is
planted, and dropped (it would refuse every fill of the key for ever)."""

_HOLDS = f"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function held(key, now)
  local kind = redis.call('TYPE', key).ok
  if kind == 'none' then
    return false
  end
  if kind ~= 'zset' then
    redis.call('DEL', key)
    return false
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', key, '(' .. (now + {MAX_HOLD_MS}), '+inf')
  return redis.call('ZCARD', key) > 0
end
"""


def lease_key(key: str) -> str:
    """The lease of ``key`` (in its hash slot): the one process that loads ``key`` after a
    miss, while the others wait for its fill instead of loading too ("Scaling Memcache at
    Facebook": leases against thundering herds). It holds the loader's lease id and expires
    by itself if that loader dies."""
    return key + "#lease{" + key + "}"


# Take ``key``'s lease for ``id`` for ``ms`` milliseconds: 1 if taken, 0 if another loader
# holds it. A value that cannot be a lease (another Redis type, no expiry, a longer expiry than
# a lease's) is foreign and taken over, never waited on.
_LEASE = """
local function take_lease(key, id, ms)
  if redis.call('SET', key, id, 'NX', 'PX', ms) then
    return 1
  end
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or ttl > tonumber(ms) or redis.call('TYPE', key).ok ~= 'string' then
    redis.call('SET', key, id, 'PX', ms)
    return 1
  end
  return 0
end
"""


def lookup(record_prefix: bytes, max_bytes: int, token_ttl: int, lease_ms: int) -> str:
    """The read script, its settings written in (a hit then sends one argument and reads one
    bulk string back, like a GET)."""
    prefix = "".join(f"\\{byte:03d}" for byte in record_prefix)  # Lua decimal escapes
    settings = (
        f"local PREFIX, MAX_BYTES = '{prefix}', {int(max_bytes)}\n"
        f"local TOKEN_TTL, LEASE_MS = {int(token_ttl)}, {int(lease_ms)}\n"
    )
    return settings + _READ_TOKEN + _HOLDS + _LEASE + _LOOKUP


_LOOKUP = """
-- A read, in one round trip. KEYS: the entry, [its token, hold and lease keys]
-- ARGV: a fresh token / lease id
-- On one server only the entry is sent, and the other three are named from it here, as
-- ``generation_key``, ``hold_key`` and ``lease_key`` name them (one key sent instead of four
-- makes a hit cost what a GET costs, but for the script's call). A cluster gets all four
-- declared: it routes and redirects a script by its keys, and a slot being migrated may
-- already have moved some of them.
-- A hit returns the entry itself. A miss returns {0, token, lease}, or {2, token, lease,
-- prefix, size} when what was under the entry is not a record (foreign: the caller counts
-- it, from its first bytes and its size; a hash or a list has size -1). ``token`` is the one
-- a fill must still find (created if missing); ``lease`` says what the caller does:
--   1: it holds the lease: load, then fill (which gives the lease back);
--   0: another loader holds it: wait for that fill, then look again;
--   2: a write holds the key off: load, and do not fill (it would be refused).
local key = KEYS[1]
local entry = redis.pcall('GET', key)
local status, prefix, size = 0, '', -1
if type(entry) == 'string' then
  if #entry <= MAX_BYTES and string.sub(entry, 1, #PREFIX) == PREFIX then
    return entry
  end
  status, prefix, size = 2, string.sub(entry, 1, 64), #entry
elseif type(entry) == 'table' and entry.err then
  status = 2  -- WRONGTYPE: a hash or a list where an entry belongs
end
local tag = '{' .. key .. '}'
local token_key = KEYS[2] or (key .. '#gen' .. tag)
local token = token_of(token_key)
if not token then
  redis.call('SET', token_key, ARGV[1], 'EX', TOKEN_TTL)
  token = ARGV[1]
end
if held(KEYS[3] or (key .. '#hold' .. tag), now_ms()) then
  return {status, token, 2, prefix, size}
end
local leased = take_lease(KEYS[4] or (key .. '#lease' .. tag), ARGV[1], LEASE_MS)
return {status, token, leased, prefix, size}
"""

FILL = (
    _READ_TOKEN
    + _HOLDS
    + """
-- KEYS: entry1, token1, hold1, lease1, ...
-- ARGV: entry ttl (ms), lease id ('' for none), expected token 1..n, payload 1..n
-- Each entry is stored only if its token is still the one its loader read and no write
-- holds it off; the loader's lease is given back either way (only its own).
local n = #KEYS / 4
local now = now_ms()
local stored = {}
for i = 1, n do
  local base = 4 * (i - 1)
  if token_of(KEYS[base + 2]) == ARGV[2 + i] and not held(KEYS[base + 3], now) then
    redis.call('SET', KEYS[base + 1], ARGV[2 + n + i], 'PX', ARGV[1])
    stored[i] = 1
  else
    stored[i] = 0
  end
  if ARGV[2] ~= '' and redis.pcall('GET', KEYS[base + 4]) == ARGV[2] then
    redis.call('DEL', KEYS[base + 4])
  end
end
return stored
"""
)

HOLD = (
    _HOLDS
    + _ACKS
    + """
-- Before a commit. KEYS: entry1, token1, hold1, ..., [ack set, expected, done]
-- ARGV: hold id, hold ms, new token, token ttl, [channel, message, acks] (acks: as INVALIDATE)
local now = now_ms()
local last = #KEYS
if ARGV[7] == '1' then
  last = last - 3
end
for i = 1, last, 3 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], ARGV[3], 'EX', ARGV[4])
  held(KEYS[i + 2], now)  -- drops a foreign value, and expired holds
  redis.call('ZADD', KEYS[i + 2], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i + 2], ARGV[2])  -- every hold lasts as long: the newest decides
end
if ARGV[5] and ARGV[5] ~= '' then
  local receivers = redis.call('PUBLISH', ARGV[5], ARGV[6])
  if ARGV[7] == '1' then
    expect_acks(KEYS[last + 1], KEYS[last + 2], KEYS[last + 3], receivers)
  end
  return receivers
end
return 0
"""
)

RELEASE = """
-- After the commit. KEYS: entry1, token1, hold1, ...
-- ARGV: hold id, new token, token ttl, [channel, message]
-- Returns {receivers, lost}: lost is 1 when this writer's hold was gone (expired, or Redis
-- lost it), so a fill may have been stored meanwhile and the writer must be confirmed.
local lost = 0
for i = 1, #KEYS, 3 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], ARGV[2], 'EX', ARGV[3])
  local kind = redis.call('TYPE', KEYS[i + 2]).ok
  if kind ~= 'zset' or redis.call('ZREM', KEYS[i + 2], ARGV[1]) == 0 then
    lost = 1
  end
end
local receivers = 0
if ARGV[4] and ARGV[4] ~= '' then
  receivers = redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return {receivers, lost}
"""

LOCK_SUFFIX = "#lock"
"""A cache lock is ``key#lock``: inside the namespace (a flush drops it), and no entry key ends
so (entry keys are digested when a part is odd, and ``#`` never starts a plain part)."""

LOCK_ACQUIRE = """
-- KEYS: lock  ARGV: token, ttl in ms
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
-- Our locks are strings that expire within ttl: anything else there is foreign (planted, or
-- left by a crashed holder of another version) and is taken over, never waited on forever.
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 or ttl > tonumber(ARGV[2]) or redis.call('TYPE', KEYS[1]).ok ~= 'string' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

LOCK_RELEASE = """
-- KEYS: lock  ARGV: token
local token = redis.pcall('GET', KEYS[1])
if type(token) ~= 'string' or token ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""
