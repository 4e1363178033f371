-- KEYS[1] the user's sessions set, KEYS[2..] the session keys to end;
-- ARGV[1] 'all' (the set must hold exactly these sessions: else -1, and the
-- caller reads it again, as a login raced) or 'these'; ARGV[2] the channel
-- sessions:ended, ARGV[3] the user id, ARGV[4..] the token digests, in the
-- order of KEYS[2..]. Ends them and announces it in the same step, so no end
-- goes unannounced and a process never trusts an ended session for long.
local digests = {unpack(ARGV, 4)}
if ARGV[1] == 'all' then
  local held = redis.call('ZRANGE', KEYS[1], 0, -1)
  if #held ~= #digests then
    return -1
  end
  local wanted = {}
  for _, digest in ipairs(digests) do wanted[digest] = true end
  for _, digest in ipairs(held) do
    if not wanted[digest] then return -1 end
  end
  redis.call('DEL', unpack(KEYS))
  redis.call('PUBLISH', ARGV[2], '{"user_id":' .. ARGV[3] .. ',"session":null}')
  return #digests
end
for i, digest in ipairs(digests) do
  redis.call('ZREM', KEYS[1], digest)
  redis.call('DEL', KEYS[i + 1])
  redis.call('PUBLISH', ARGV[2], '{"user_id":' .. ARGV[3] .. ',"session":"' .. digest .. '"}')
end
return #digests
