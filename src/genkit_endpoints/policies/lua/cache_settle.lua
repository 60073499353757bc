-- The flow cache's settle: store the value (or the failure marker for the current
-- waiters), then release the lease only if the caller still holds it (compare-and-delete:
-- a leader whose lease expired must not release its successor's).
-- KEYS[1] lease, KEYS[2] where the payload goes
-- ARGV[1] token ('' without a lease), ARGV[2] payload ('' for none), ARGV[3] its TTL in ms
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
