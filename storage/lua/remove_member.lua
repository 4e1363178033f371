-- KEYS[3] messages; ARGV[2] user to remove (ARGV[1] itself to leave).
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
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return {'ok', 'deleted'}
end
if owner == ARGV[2] then
  redis.call('HSET', KEYS[1], 'owner_id', redis.call('ZRANGE', KEYS[2], 0, 0)[1])
end
return {'ok', 'left'}
