-- KEYS[3] messages; ARGV[2] message id. Only the sender may delete.
local found = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])
if #found == 0 then
  return {'not_found', 'message not found'}
end
if cjson.decode(found[1]).sender_id ~= tonumber(ARGV[1]) then
  return {'forbidden', 'you can only delete your own messages'}
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])
local _, seq = emit('message_deleted', '"message_id":' .. ARGV[2])
-- Its older events are replayed without the content: deleted means gone.
local message = cjson.decode(found[1])
if message.edited_at then
  -- Versions from before its edits go: the stub below, at a later seq, stands in for them all.
  local cursor = '0'
  repeat
    local page = redis.call('ZSCAN', PRIOR, cursor, 'MATCH', ARGV[2] .. ':*', 'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do
      redis.call('ZREM', PRIOR, page[2][i])
    end
  until cursor == '0'
end
keep_prior(seq, ARGV[2], '{"id":' .. ARGV[2] .. ',"sender_id":' .. message.sender_id .. ',"time":"' .. message.time .. '","deleted":true}')
write_summary()
return {'ok'}
