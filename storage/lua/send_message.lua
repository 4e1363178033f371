-- KEYS[3] messages; ARGV[2] the message JSON after its id: '"sender_id":..}'.
-- The id comes from the chat's own counter inside the script, so concurrent
-- sends get distinct ids in the order they are stored.
local id = redis.call('HINCRBY', KEYS[1], 'last_message_id', 1)
redis.call('ZADD', KEYS[3], id, '{"id":' .. id .. ',' .. ARGV[2])
return {'ok', id}
