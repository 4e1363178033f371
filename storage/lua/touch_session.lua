-- KEYS[1] user hash, KEYS[2] session key; ARGV[1] now (unix seconds),
-- ARGV[2] idle timeout (seconds). A live session is kept for another idle
-- timeout, never past its absolute end; returns the seconds it has left,
-- or 0 when there is no live session (none, expired, account gone or
-- being deleted).
local stored = redis.call('GET', KEYS[2])
if not stored or redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deleted_at') == 1 then
  return 0
end
local left = tonumber(stored) and tonumber(stored) - tonumber(ARGV[1])
if not left then
  return math.max(redis.call('TTL', KEYS[2]), 1)  -- written before idle timeouts: keeps its TTL
end
if left <= 0 then
  redis.call('DEL', KEYS[2])
  return 0
end
local ttl = math.min(left, tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[2], ttl)
return ttl
