-- Shared circuit-breaker state (genkit_endpoints.policies.breaker.redis): one atomic step per call.
-- The same state machine as breaker.py's LocalBreakerState, so every replica opens,
-- half-opens and closes together. Times are seconds (floats) from the caller's clock.
--
-- KEYS[1] state hash {state, opened_at, fails}   KEYS[2] probe zset {token: lease expiry}
-- KEYS[3] window hash {"t:<bucket>": calls, "f:<bucket>": failures}
-- ARGV: op, now, mode, threshold, rate, window, min_calls, recovery, half_max, lease,
--       buckets, token, failed, ttl
-- Returns {state, opened_at, admitted (0|1), retry_after, from_state, reason}.

local op = ARGV[1]
local now = tonumber(ARGV[2])
local mode = ARGV[3]
local threshold = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local min_calls = tonumber(ARGV[7])
local recovery = tonumber(ARGV[8])
local half_max = tonumber(ARGV[9])
local lease = tonumber(ARGV[10])
local buckets = tonumber(ARGV[11])
local token = ARGV[12]
local failed = ARGV[13] == '1'
local ttl = tonumber(ARGV[14])

local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local opened_at = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')

local function reply(admitted, retry_after, from, reason)
  return {state, tostring(opened_at), admitted, tostring(retry_after), from, reason}
end

local function save()
  redis.call('HSET', KEYS[1], 'state', state, 'opened_at', tostring(opened_at))
  redis.call('EXPIRE', KEYS[1], ttl)
end

local function trip(reason)
  local from = state
  state = 'open'
  opened_at = now
  redis.call('HSET', KEYS[1], 'fails', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
  save()
  return reply(1, 0, from, reason)
end

if op == 'read' then
  return reply(1, 0, '', '')
end

if op == 'release' then
  redis.call('ZREM', KEYS[2], token)
  return reply(1, 0, '', '')
end

if op == 'acquire' then
  local from, reason = '', ''
  if state == 'open' then
    if now < opened_at + recovery then
      return reply(0, opened_at + recovery - now, '', '')
    end
    from, reason = 'open', 'recovery_timeout'
    state = 'half_open'
    redis.call('DEL', KEYS[2])
    save()
  end
  if state == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tostring(now))
    if redis.call('ZCARD', KEYS[2]) >= half_max then
      return reply(0, 1, from, reason)
    end
    redis.call('ZADD', KEYS[2], tostring(now + lease), token)
    redis.call('EXPIRE', KEYS[2], ttl)
  end
  return reply(1, 0, from, reason)
end

-- op == 'record'
if state == 'half_open' then
  if token == '' or redis.call('ZREM', KEYS[2], token) == 0 then
    return reply(1, 0, '', '')  -- not a probe of this half-open period: no say in it
  end
  if failed then
    return trip('probe_failed')
  end
  state = 'closed'
  redis.call('HSET', KEYS[1], 'fails', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
  save()
  return reply(1, 0, 'half_open', 'probe_succeeded')
end
if state ~= 'closed' then
  return reply(1, 0, '', '')  -- admitted before it opened: already decided
end
if mode == 'consecutive' then
  if not failed then
    redis.call('HSET', KEYS[1], 'fails', 0)
    return reply(1, 0, '', '')
  end
  local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
  redis.call('EXPIRE', KEYS[1], ttl)
  if fails >= threshold then
    return trip('failure_threshold')
  end
  return reply(1, 0, '', '')
end

-- adaptive: per-bucket counters over the sliding window, older buckets dropped
local width = window / buckets
local current = math.floor(now / width)
local oldest = current - buckets + 1
redis.call('HINCRBY', KEYS[3], 't:' .. current, 1)
if failed then
  redis.call('HINCRBY', KEYS[3], 'f:' .. current, 1)
end
redis.call('EXPIRE', KEYS[3], math.ceil(window) + 1)
local total, fails = 0, 0
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  local kind, bucket = string.match(fields[i], '^(%a):(-?%d+)$')
  bucket = tonumber(bucket)
  if bucket == nil or bucket < oldest then
    redis.call('HDEL', KEYS[3], fields[i])
  elseif kind == 't' then
    total = total + tonumber(fields[i + 1])
  else
    fails = fails + tonumber(fields[i + 1])
  end
end
if total >= min_calls and fails >= rate * total then
  return trip('failure_rate')
end
return reply(1, 0, '', '')
