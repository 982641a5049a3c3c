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
"""

from __future__ import annotations


def generation_key(key: str) -> str:
    """The generation token of ``key``, in ``key``'s hash slot: Redis Cluster hashes only the
    ``{...}`` part of a key that has one, and the whole of a key that has none. (Cache keys
    never contain braces: ``CacheKeys`` digests any part that has one.)"""
    return key + "#gen{" + key + "}"


INVALIDATE = """
-- KEYS: entry1, token1, entry2, token2, ...  ARGV: new token, token ttl, [channel, message]
for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', ARGV[2])
end
if ARGV[3] and ARGV[3] ~= '' then
  return redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return 0
"""

GENERATIONS = """
-- KEYS: token1, token2, ...  ARGV: a fresh token for the missing ones, token ttl
local result = {}
for i, key in ipairs(KEYS) do
  local token = redis.call('GET', key)
  if not token then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
    token = ARGV[1]
  end
  result[i] = token
end
return result
"""

FILL = """
-- KEYS: entry1, token1, ...  ARGV: entry ttl, expected token 1..n, payload 1..n
local n = #KEYS / 2
local stored = {}
for i = 1, n do
  if redis.call('GET', KEYS[2 * i]) == ARGV[1 + i] then
    redis.call('SET', KEYS[2 * i - 1], ARGV[1 + n + i], 'EX', ARGV[1])
    stored[i] = 1
  else
    stored[i] = 0
  end
end
return stored
"""
