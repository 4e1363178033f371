-- KEYS[1] name key; ARGV[1] new owner id, ARGV[2] the stale owner id it may
-- replace ('' when the name must be free). Compare-and-set, so two claims
-- of one name can never both win.
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
