-- KEYS[1] user hash, KEYS[2] the new session key, KEYS[3] the user's
-- sessions; ARGV[1] token digest, ARGV[2] now (unix seconds, with
-- microseconds), ARGV[3] absolute lifetime, ARGV[4] idle timeout (seconds),
-- ARGV[5] the password hash the login checked, or '' for a new account.
-- Refused (0) for an account that is gone or being deleted, so a login
-- racing a deletion cannot leave a session behind, and for a password
-- changed since it was checked. Answers how many sessions the user has.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deleted_at') == 1 then
  return 0
end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'password') ~= ARGV[5] then
  return 0
end
local now, lifetime, idle = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- The value is the absolute end; the TTL is the idle timeout (see touch_session).
-- Written first: when Redis is full (maxmemory) this first write is refused
-- and the script stops; after a write that only frees (the ZREMRANGEBYSCORE
-- below) Redis would let it run on and grow.
redis.call('SET', KEYS[2], math.floor(now) + lifetime, 'EX', math.min(lifetime, idle))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
-- Scored to the microsecond: the oldest sessions sort first.
redis.call('ZADD', KEYS[3], now + lifetime, ARGV[1])
-- The set lives as long as its longest session (a shorter lifetime setting
-- must not drop sessions made under a longer one from the set that ends them).
local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[3], math.ceil(math.max(tonumber(last[2]), now + lifetime)))
return redis.call('ZCARD', KEYS[3])
