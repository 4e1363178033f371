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

-- KEYS[4] is the chat's summary, what GET /api/chats lists: rewritten by
-- every script that changes the title, the owner or the newest message.
local function write_summary()
  local info = redis.call('HMGET', KEYS[1], 'id', 'title', 'owner_id', 'created_at')
  local summary = {
    id = tonumber(info[1]), title = info[2], owner_id = tonumber(info[3]), created_at = info[4],
    last_message = cjson.null, last_message_id = cjson.null, last_message_time = cjson.null, sender_id = cjson.null,
  }
  local newest = redis.call('ZRANGE', KEYS[3], -1, -1)[1]
  if newest then
    local message = cjson.decode(newest)
    summary.last_message, summary.last_message_id = message.content, message.id
    summary.last_message_time, summary.sender_id = message.time, message.sender_id
  end
  redis.call('SET', KEYS[4], cjson.encode(summary))
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found', 'chat not found'}
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {'forbidden', 'you are not a member of this chat'}
end
