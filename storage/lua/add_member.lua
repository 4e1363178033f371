-- ARGV[2] user to add, ARGV[3] '1' if that user exists (read just before),
-- ARGV[4] the new member's own channel (the event goes there too, so that a
-- process not yet following the chat learns of it); KEYS[5] the new
-- member's member key: their read marker starts at the chat's newest
-- message id (what was said before they came is not unread for them).
-- ARGV[5] '1' if that user accepts adds from the acting one (their
-- `allow_adds` setting, read just before: see ChatStore.add_member).
if ARGV[3] ~= '1' then
  return {'not_found', 'user not found'}
end
if ARGV[5] ~= '1' then
  return {'forbidden', 'this user accepts adds only from people they share a chat with'}
end
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then
  return {'conflict', 'user is already a member of this chat'}
end
redis.call('ZADD', KEYS[2], redis.call('HINCRBY', KEYS[1], 'join_seq', 1), ARGV[2])
redis.call('SET', KEYS[5], redis.call('HGET', KEYS[1], 'last_message_id') or 0)
local event = emit('member_added', '"user_id":' .. ARGV[2])
redis.call('PUBLISH', ARGV[4], event)
write_summary()
return {'ok'}
