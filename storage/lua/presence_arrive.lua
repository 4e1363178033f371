-- KEYS[1] the user's presence set; ARGV[1] this process's id, ARGV[2] the
-- time now and ARGV[3] when this claim expires (ms since the epoch),
-- ARGV[4] the user's presence channel, ARGV[5] the event to publish there,
-- ARGV[6] how long the set itself is kept (seconds). Claims the user for
-- this process, dropping lapsed claims; announces the user online if no
-- live claim was there before, in the same step as the change, so that the
-- channel carries the changes in order. Answers 1 if announced.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local was_online = redis.call('ZCARD', KEYS[1]) > 0
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[6])
if was_online then
  return 0
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
