-- Prepended to every chat script. KEYS[1] chat hash, KEYS[2] member set,
-- ARGV[1] acting user id. Checking membership inside the script that writes
-- means a member who just left can neither read nor post.

-- Events go to each member's channel (storage.keys.user_events_channel),
-- from inside the script, so every member sees changes in the order they
-- were made.
local function publish_to(members, event)
  for _, member in ipairs(members) do
    redis.call('PUBLISH', 'user:{' .. member .. '}:events', event)
  end
end

local function publish_to_members(event)
  publish_to(redis.call('ZRANGE', KEYS[2], 0, -1), event)
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found', 'chat not found'}
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {'forbidden', 'you are not a member of this chat'}
end
