-- KEYS[3] messages; KEYS[5] the sender's member key (their read marker);
-- KEYS[6], when given, the send's idempotency record. ARGV[2] the end of
-- the message JSON: '"content":...}'; ARGV[3] the chat id; ARGV[4] the time
-- now (ISO 8601 UTC); with KEYS[6], ARGV[5] a digest of the content and
-- ARGV[6] how long to keep the record (seconds).
-- The id comes from the chat's own counter inside the script, so concurrent
-- sends get distinct ids in the order they are stored; the time never goes
-- back against the message before (server clocks may differ a little).
-- Sending moves the sender's read marker to the new message: the id is the
-- chat's newest, so the marker only moves forward, and the sender's own
-- messages are never unread for them.
-- Answers {'ok', id, replayed (0 or 1)}, and for a new message its event's
-- seq and its time (the process's read cache takes the message at once).
if KEYS[6] then
  local first = redis.call('GET', KEYS[6])
  if first then
    local first_id, first_digest = string.match(first, '^(%d+):(.*)$')
    if first_digest ~= ARGV[5] then
      return {'key_reused', 'this Idempotency-Key was already used for a different message'}
    end
    return {'ok', tonumber(first_id), 1}
  end
end
local id = redis.call('HINCRBY', KEYS[1], 'last_message_id', 1)
local time = ARGV[4]
local previous = redis.call('HGET', KEYS[1], 'last_message_time')
if previous and previous > time then
  time = previous
end
redis.call('HSET', KEYS[1], 'last_message_time', time)
local message = '{"id":' .. id .. ',"sender_id":' .. ARGV[1] .. ',"time":"' .. time .. '",' .. ARGV[2]
redis.call('ZADD', KEYS[3], id, message)
redis.call('SET', KEYS[5], id)
if KEYS[6] then
  redis.call('SET', KEYS[6], id .. ':' .. ARGV[5], 'EX', ARGV[6])
end
local _, seq = emit('message', '"message":' .. message, id)
write_summary()
return {'ok', id, 0, seq, time}
