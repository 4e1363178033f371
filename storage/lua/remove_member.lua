-- KEYS[3] messages; ARGV[2] user to remove (ARGV[1] itself to leave),
-- ARGV[3] the event to publish without its closing '}': the script adds
-- the owner after the change (null when the chat is gone). The removed
-- member gets the event too. KEYS[5] the removed member's member key.
-- Only the owner removes others. Ownership passes to the earliest joiner;
-- the last member out deletes the chat with its history.
local owner = redis.call('HGET', KEYS[1], 'owner_id')
if ARGV[2] ~= ARGV[1] then
  if owner ~= ARGV[1] then
    return {'forbidden', 'only the chat owner can remove members'}
  end
  if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
    return {'not_found', 'user is not a member of this chat'}
  end
end
local audience = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[5])
local outcome = 'left'
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  owner, outcome = 'null', 'deleted'
elseif owner == ARGV[2] then
  owner = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  redis.call('HSET', KEYS[1], 'owner_id', owner)
  write_summary()
end
publish_to(audience, ARGV[3] .. ',"owner_id":' .. owner .. '}')
return {'ok', outcome}
