-- A sliding-window log. KEYS[1] sorted set of attempts (score: ms);
-- ARGV[1] limit, ARGV[2] window in ms, ARGV[3] a new attempt's unique id.
-- Records the attempt and returns 0 while fewer than `limit` are in the
-- window; else records nothing and returns the ms until one leaves it.
-- Redis's own clock, so every server process counts the same window.
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
