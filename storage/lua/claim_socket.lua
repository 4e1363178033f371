-- KEYS[1] a sorted set of open sockets (socket id -> claim expiry, ms since
-- the epoch); ARGV[1] the new socket's id, ARGV[2] the time now, ARGV[3]
-- when its claim expires, ARGV[4] the cap, ARGV[5] how long the set itself
-- is kept (ms). Drops lapsed claims (their process stopped renewing them),
-- then adds the socket if fewer than the cap are open. Answers 1 if added.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
