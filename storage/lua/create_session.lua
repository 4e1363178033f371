-- KEYS[1] user hash, KEYS[2] the new session key, KEYS[3] the user's
-- sessions; ARGV[1] token digest, ARGV[2] created_at, ARGV[3] ttl seconds,
-- ARGV[4] now (unix seconds). Refused (0) for an account that is gone or
-- being deleted, so a login racing a deletion cannot leave a session behind.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deleted_at') == 1 then
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[4])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
