-- KEYS[3] messages; ARGV[2] the end of the message JSON: '"content":...}';
-- ARGV[3] the chat id; ARGV[4] the time now (ISO 8601 UTC). The id comes
-- from the chat's own counter inside the script, so concurrent sends get
-- distinct ids in the order they are stored; the time never goes back
-- against the message before (server clocks may differ a little).
local id = redis.call('HINCRBY', KEYS[1], 'last_message_id', 1)
local time = ARGV[4]
local previous = redis.call('HGET', KEYS[1], 'last_message_time')
if previous and previous > time then
  time = previous
end
redis.call('HSET', KEYS[1], 'last_message_time', time)
local message = '{"id":' .. id .. ',"sender_id":' .. ARGV[1] .. ',"time":"' .. time .. '",' .. ARGV[2]
redis.call('ZADD', KEYS[3], id, message)
write_summary()
publish_to_members('{"type":"message","chat_id":' .. ARGV[3] .. ',"message":' .. message .. '}')
return {'ok', id}
