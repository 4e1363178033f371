-- KEYS[3] messages; ARGV[2] the message JSON after its id: '"sender_id":..}';
-- ARGV[3] the chat id. The id comes from the chat's own counter inside the
-- script, so concurrent sends get distinct ids in the order they are stored.
local id = redis.call('HINCRBY', KEYS[1], 'last_message_id', 1)
local message = '{"id":' .. id .. ',' .. ARGV[2]
redis.call('ZADD', KEYS[3], id, message)
write_summary()
publish_to_members('{"type":"message","chat_id":' .. ARGV[3] .. ',"message":' .. message .. '}')
return {'ok', id}
