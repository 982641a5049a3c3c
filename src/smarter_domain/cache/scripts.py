"""Lua scripts that make the Redis tier coherent (each runs atomically in Redis).

Every entry key ``k`` has a generation counter ``k#gen``, and the namespace has an epoch (a
random token that a restarted, empty Redis does not have). An invalidation deletes the entry,
bumps its generation and publishes the keys. A loader reads the epoch and generations before
it reads the database, and its fill is stored only if neither changed meanwhile: a reader that
loaded a row before a writer's commit can never put that row back after the writer's
invalidation (the lease idea of "Scaling Memcache at Facebook", with counters for tokens).
"""

from __future__ import annotations

GENERATION_SUFFIX = "#gen"

INVALIDATE = """
for _, key in ipairs(KEYS) do
  redis.call('DEL', key)
  local generation = key .. '#gen'
  redis.call('INCR', generation)
  redis.call('EXPIRE', generation, ARGV[1])
end
if ARGV[3] ~= '' then
  return redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 0
"""

GENERATIONS = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
local result = {epoch}
for i = 2, #KEYS do
  result[i] = redis.call('GET', KEYS[i] .. '#gen') or '0'
end
return result
"""

FILL = """
local n = #KEYS - 1
local stored = {}
local same_epoch = redis.call('GET', KEYS[1]) == ARGV[1]
for i = 1, n do
  local key = KEYS[i + 1]
  if same_epoch and (redis.call('GET', key .. '#gen') or '0') == ARGV[2 + i] then
    redis.call('SET', key, ARGV[2 + n + i], 'EX', ARGV[2])
    stored[i] = 1
  else
    stored[i] = 0
  end
end
return stored
"""
