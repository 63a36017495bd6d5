"""The Lua scripts of the Redis rate limiter and cache (each runs atomically in Redis).

Kept apart from the Python that calls them so each reads as one piece; numbers go back
to Python as strings because Redis truncates a Lua float reply to an integer.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "BLOCK", "CACHE_SET", "CORRECT"]

# KEYS: seq, block, then (log zset, amounts hash, total) per limited dimension.
# ARGV: n dims, window s, now (or "" for the server's TIME), then (limit, amount) per dim.
# Returns {1, id, now} when admitted, else {0, seconds to wait, now}. Numbers travel as
# strings: Redis would truncate a Lua float reply to an integer.
ACQUIRE = """
local n = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local ttl = math.ceil(window * 1000) + 5000
local function sum(h, ids)
  local s = 0
  for i = 1, #ids, 500 do
    local part = {}
    for j = i, math.min(i + 499, #ids) do part[#part + 1] = ids[j] end
    for _, v in ipairs(redis.call('HMGET', h, unpack(part))) do s = s + (tonumber(v) or 0) end
    redis.call('HDEL', h, unpack(part))
  end
  return s
end
local wait = 0
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then wait = blocked - now end
for i = 0, n - 1 do
  local z, h, t = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local limit, amount = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - window)
  if #old > 0 then
    local freed = sum(h, old)
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - window)
    redis.call('INCRBYFLOAT', t, -freed)
  end
  local total = 0
  if redis.call('ZCARD', z) == 0 then
    redis.call('DEL', t)
  else
    total = tonumber(redis.call('GET', t) or '0')
  end
  local excess = total + amount - limit
  if excess > 1e-9 then
    local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
    local freed, until_free = 0, window
    for j = 1, #entries, 2 do
      freed = freed + (tonumber(redis.call('HGET', h, entries[j])) or 0)
      if freed >= excess - 1e-9 then
        until_free = tonumber(entries[j + 1]) + window - now
        break
      end
    end
    if until_free > wait then wait = until_free end
  end
end
if wait > 0 then return {0, tostring(math.max(wait, 1e-6)), tostring(now)} end
local id = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ttl)
for i = 0, n - 1 do
  local z, h, t = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local amount = ARGV[5 + 2 * i]
  redis.call('ZADD', z, now, id)
  redis.call('HSET', h, id, amount)
  redis.call('INCRBYFLOAT', t, amount)
  redis.call('PEXPIRE', z, ttl)
  redis.call('PEXPIRE', h, ttl)
  redis.call('PEXPIRE', t, ttl)
end
return {1, tostring(id), tostring(now)}
"""

# KEYS: (log zset, amounts hash, total) per corrected dimension. ARGV: id, new amounts.
# An entry that already left the window is not corrected (it no longer counts).
CORRECT = """
for i = 0, #KEYS / 3 - 1 do
  local h, t = KEYS[2 + 3 * i], KEYS[3 + 3 * i]
  local old = redis.call('HGET', h, ARGV[1])
  if old then
    local new = tonumber(ARGV[2 + i])
    redis.call('HSET', h, ARGV[1], ARGV[2 + i])
    redis.call('INCRBYFLOAT', t, new - tonumber(old))
  end
end
return 1
"""

# KEYS: block. ARGV: seconds, now (or ""). Every process waits until the latest reset.
BLOCK = """
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local untl = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], tostring(untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


# KEYS: value key, lru zset. ARGV: json, ttl ms (0: none), now, max entries (0: none),
# value-key prefix. Stores, then evicts the least recently used beyond max entries.
CACHE_SET = """
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local cap = tonumber(ARGV[4])
if cap > 0 then
  redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
  local extra = redis.call('ZCARD', KEYS[2]) - cap
  if extra > 0 then
    for _, item in ipairs(redis.call('ZPOPMIN', KEYS[2], extra)) do
      if string.sub(item, 1, #ARGV[5]) == ARGV[5] then redis.call('DEL', item) end
    end
  end
end
return 1
"""
