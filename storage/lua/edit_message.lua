-- KEYS[3] messages; ARGV[2] message id, ARGV[3] the new content as a JSON
-- string, ARGV[4] the time now (ISO 8601 UTC). Only the sender may edit.
-- The message keeps its fields and their order and gains `edited_at` last,
-- never earlier than its own time or a previous edit (clocks may differ).
-- The same content again changes nothing and emits nothing.
local old = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])[1]
if not old then
  return {'not_found', 'message not found'}
end
local message = cjson.decode(old)
if message.sender_id ~= tonumber(ARGV[1]) then
  return {'forbidden', 'you can only edit your own messages'}
end
if cjson.decode(ARGV[3]) == message.content then
  return {'ok'}
end
local time = ARGV[4]
for _, earliest in ipairs({message.time, message.edited_at or ''}) do
  if earliest > time then
    time = earliest
  end
end
-- Built from the stored text, so what it had is kept byte for byte.
local head = string.match(old, '^({"id":%d+,"sender_id":%d+,"time":"[^"]*",)')
local new = head .. '"content":' .. ARGV[3] .. ',"edited_at":"' .. time .. '"}'
-- Added before the old version goes: when Redis is full (maxmemory) this
-- first write is refused and nothing changes; after a write that only frees
-- Redis would let the script run on and grow.
redis.call('ZADD', KEYS[3], ARGV[2], new)
redis.call('ZREM', KEYS[3], old)
local _, seq = emit('message_edited', '"message":' .. new, ARGV[2], 'x')
-- The older events that showed it replay it as it was.
keep_prior(seq, ARGV[2], old)
write_summary()
return {'ok'}
