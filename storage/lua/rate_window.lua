-- A sliding-window log. KEYS[1] sorted set of attempts (score: ms);
-- ARGV[1] limit, ARGV[2] window in ms, ARGV[3] a new attempt's unique id,
-- ARGV[4] how long (ms) the attempt is held before it is known to count.
-- While fewer than `limit` are in the window, records the attempt as a
-- reservation (scored so that it leaves the window after ARGV[4] ms unless
-- rate_count.lua counts it for the whole window) and returns 0; else
-- records nothing and returns the ms until one leaves the window.
-- Redis's own clock, so every server process counts the same window.
local limit, window, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now - window + math.min(hold, window), ARGV[3])
if redis.call('PTTL', KEYS[1]) < hold then
  redis.call('PEXPIRE', KEYS[1], math.min(hold, window))
end
return 0
