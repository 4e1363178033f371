-- KEYS[3] messages; ARGV[2] message id, ARGV[3] the event to publish.
-- Only the sender may delete.
local found = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])
if #found == 0 then
  return {'not_found', 'message not found'}
end
if cjson.decode(found[1]).sender_id ~= tonumber(ARGV[1]) then
  return {'forbidden', 'you can only delete your own messages'}
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])
write_summary()
publish_to_members(ARGV[3])
return {'ok'}
