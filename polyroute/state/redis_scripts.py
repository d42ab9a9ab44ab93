"""The Lua scripts of the shared limiter. Each runs atomically in Redis, so checking every
scope and taking from all of them is one step no other replica can interleave with.

Key layout under the prefix P (one hash tag, so a Redis Cluster keeps them in one slot):
``P r:<scope>`` / ``P t:<scope>`` hashes of one-second buckets (requests, tokens) plus fields
``o`` (oldest second kept), ``l`` (latest) and ``s`` (sum); ``P l:<scope>`` a sorted set of
leases scored by expiry (ms); ``P a:<scope>`` a hash lease → reserved nano-USD plus ``s``;
``P s:<scope>:<period>`` spend counters; ``P seeded`` exists once spend was loaded from the
ledger. Time is Redis's own (TIME), so replicas with skewed clocks still agree. Numbers go
back to Redis through ``%d`` so large integers never turn into 1e+15 notation.
"""

from __future__ import annotations

_COMMON = r"""
local P = ARGV[1]
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now_s - 60
local function fmt(x) return string.format('%d', x) end
"""

ADMIT = _COMMON + r"""
local lease = ARGV[2]
local ttl = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local sfx = {d = ARGV[6], m = ARGV[7], t = 't'}
local n = tonumber(ARGV[8])

local function window(key)
  local h = redis.call('HMGET', key, 'o', 'l', 's')
  if not h[1] then return 0 end
  local o, l, s = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
  if l < cutoff then redis.call('DEL', key) return 0 end
  if o < cutoff then
    for sec = o, cutoff - 1 do
      local f = fmt(sec)
      local v = redis.call('HGET', key, f)
      if v then s = s - tonumber(v) redis.call('HDEL', key, f) end
    end
    redis.call('HSET', key, 'o', fmt(cutoff), 's', fmt(s))
  end
  return s
end

local function retry_ms(key, excess)
  local o = tonumber(redis.call('HGET', key, 'o') or now_s)
  local freed = 0
  for sec = o, now_s do
    local v = redis.call('HGET', key, fmt(sec))
    if v then
      freed = freed + tonumber(v)
      if freed >= excess then return (sec + 61) * 1000 - now_ms end
    end
  end
  return 60000
end

local function add(key, amount)
  redis.call('HINCRBY', key, fmt(now_s), fmt(amount))
  redis.call('HINCRBY', key, 's', fmt(amount))
  redis.call('HSETNX', key, 'o', fmt(now_s))
  redis.call('HSET', key, 'l', fmt(now_s))
  redis.call('EXPIRE', key, 62)
end

local function leases(name)
  local z, a = P .. 'l:' .. name, P .. 'a:' .. name
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now_ms, 'LIMIT', 0, 500)
  if #expired > 0 then
    local amounts = redis.call('HMGET', a, unpack(expired))
    local total = 0
    for i = 1, #amounts do if amounts[i] then total = total + tonumber(amounts[i]) end end
    redis.call('HDEL', a, unpack(expired))
    if total ~= 0 then redis.call('HINCRBY', a, 's', fmt(-total)) end
    redis.call('ZREM', z, unpack(expired))
  end
  return redis.call('ZCARD', z), tonumber(redis.call('HGET', a, 's') or '0')
end

local scopes = {}
local seeded = nil
local i = 9
for k = 1, n do
  local name = ARGV[i]
  local rpm, tpm, conc = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local nb = tonumber(ARGV[i + 4])
  i = i + 5
  local budgets = {}
  for j = 1, nb do budgets[j] = {ARGV[i], tonumber(ARGV[i + 1])} i = i + 2 end
  scopes[k] = {name, rpm, tpm, conc, budgets}
  if rpm > 0 then
    local key = P .. 'r:' .. name
    local used = window(key)
    if used + 1 > rpm then return {0, 'rpm', name, retry_ms(key, used + 1 - rpm), ''} end
  end
  if tpm > 0 then
    local key = P .. 't:' .. name
    local used = window(key)
    if used + tokens > tpm then
      local r = -1
      if tokens <= tpm then r = retry_ms(key, used + tokens - tpm) end
      return {0, 'tpm', name, r, ''}
    end
  end
  if conc > 0 or nb > 0 then
    local count, reserved = leases(name)
    if conc > 0 and count >= conc then return {0, 'concurrency', name, 1000, ''} end
    if nb > 0 then
      if seeded == nil then seeded = redis.call('EXISTS', P .. 'seeded') end
      if seeded == 0 then return {-1} end
      for j = 1, nb do
        local period, limit = budgets[j][1], budgets[j][2]
        local spent = tonumber(redis.call('GET', P .. 's:' .. name .. ':' .. sfx[period]) or '0')
        if spent + reserved + cost > limit then return {0, 'budget', name, -1, period} end
      end
    end
  end
end

local expiry = now_ms + ttl
for k = 1, n do
  local s = scopes[k]
  local name = s[1]
  if s[2] > 0 then add(P .. 'r:' .. name, 1) end
  if s[3] > 0 then add(P .. 't:' .. name, tokens) end
  if s[4] > 0 or #s[5] > 0 then
    local z = P .. 'l:' .. name
    redis.call('ZADD', z, expiry, lease)
    redis.call('PEXPIRE', z, ttl + 60000)
    if #s[5] > 0 and cost > 0 then
      local a = P .. 'a:' .. name
      redis.call('HSET', a, lease, fmt(cost))
      redis.call('HINCRBY', a, 's', fmt(cost))
      redis.call('PEXPIRE', a, ttl + 60000)
    end
  end
end
return {1, now_s}
"""

# ARGV: P, nops, then per op: lease, second, token delta, cost, day, month, nscopes, and per
# scope: name, adjust tokens (0/1), holds a lease (0/1). Each op runs under pcall: one op that
# fails (a corrupt key, a number that slipped through) is counted and reported back, and every
# other op of the batch is still applied. Returns {ops, failed ops, the first error}.
SETTLE = _COMMON + r"""
local function settle(i, n)
  local lease, second, delta, cost = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]),
    tonumber(ARGV[i + 3])
  local day, month = ARGV[i + 4], ARGV[i + 5]
  i = i + 7
  for k = 1, n do
    local name, tpm, leased = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    i = i + 3
    if leased == '1' then
      local a = P .. 'a:' .. name
      redis.call('ZREM', P .. 'l:' .. name, lease)
      local v = redis.call('HGET', a, lease)
      if v then
        redis.call('HDEL', a, lease)
        redis.call('HINCRBY', a, 's', fmt(-tonumber(v)))
      end
    end
    if tpm == '1' and delta ~= 0 then
      local key = P .. 't:' .. name
      if redis.call('HEXISTS', key, second) == 1 then
        redis.call('HINCRBY', key, second, fmt(delta))
        redis.call('HINCRBY', key, 's', fmt(delta))
      end
    end
    if cost > 0 then
      local s = P .. 's:' .. name .. ':'
      redis.call('INCRBY', s .. day, fmt(cost))
      redis.call('EXPIRE', s .. day, 3 * 86400)
      redis.call('INCRBY', s .. month, fmt(cost))
      redis.call('EXPIRE', s .. month, 40 * 86400)
      redis.call('INCRBY', s .. 't', fmt(cost))
    end
  end
end

local nops = tonumber(ARGV[2])
local i = 3
local failed, first = 0, ''
for op = 1, nops do
  local n = tonumber(ARGV[i + 6])
  local ok, err = pcall(settle, i, n)
  if not ok then
    failed = failed + 1
    if first == '' then
      first = type(err) == 'table' and tostring(err.err) or tostring(err)
    end
  end
  i = i + 7 + 3 * n
end
return {nops, failed, first}
"""

# ARGV: P, ttl ms, then (scope, lease) pairs: push the expiry of live leases forward.
RENEW = _COMMON + r"""
local ttl = tonumber(ARGV[2])
local expiry = now_ms + ttl
for i = 3, #ARGV, 2 do
  local z = P .. 'l:' .. ARGV[i]
  redis.call('ZADD', z, 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', z, ttl + 60000)
  redis.call('PEXPIRE', P .. 'a:' .. ARGV[i], ttl + 60000)
end
return 1
"""

# ARGV: P, then (counter, value) pairs. Keeps the larger of what is there (settled since the
# data loss) and the ledger's figure, then marks the counters as seeded.
SEED = _COMMON + r"""
for i = 2, #ARGV, 2 do
  local key = P .. 's:' .. ARGV[i]
  local have = tonumber(redis.call('GET', key) or '0')
  if tonumber(ARGV[i + 1]) > have then redis.call('SET', key, ARGV[i + 1]) end
end
redis.call('SET', P .. 'seeded', '1')
return 1
"""
