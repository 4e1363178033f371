-- A burst, then a steady rate (GCRA). KEYS[1] string: the theoretical
-- arrival time in ms; ARGV[1] ms between requests at the steady rate,
-- ARGV[2] burst size. Returns 0 and takes the request, or the ms until one
-- would be allowed. Redis's own clock, so every server process agrees.
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now) + interval
local wait = tat - now - burst * interval
if wait > 0 then
  return wait
end
redis.call('SET', KEYS[1], tat, 'PX', tat - now)
return 0
