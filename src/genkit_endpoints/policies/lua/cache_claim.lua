-- The flow cache's claim: the value, else the failure of the leader this waiter saw, else
-- the lease for the caller, else who holds it. Atomic, one round trip.
-- KEYS[1] value, KEYS[2] lease, KEYS[3] failure marker of the observed leader
-- ARGV[1] caller's random token, ARGV[2] lease time in milliseconds
local value = redis.call('GET', KEYS[1])
if value then
  return {'hit', value}
end
local failure = redis.call('GET', KEYS[3])
if failure then
  return {'fail', failure}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'lead', ''}
end
return {'wait', redis.call('GET', KEYS[2]) or ''}
