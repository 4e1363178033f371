-- KEYS[1] a sliding-window log (see rate_window.lua); ARGV[1] the window in
-- ms, ARGV[2] a reserved attempt's id. The attempt counts: it stays in the
-- window for the whole window from now.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
