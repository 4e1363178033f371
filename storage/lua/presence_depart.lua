-- KEYS[1] the user's presence set; ARGV[1] this process's id, ARGV[2] the
-- time now (ms since the epoch), ARGV[3] the user's presence channel,
-- ARGV[4] the event to publish there. Drops this process's claim; announces
-- the user offline if no live claim is left. Answers 1 if announced.
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf') > 0 then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
