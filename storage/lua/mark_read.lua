-- KEYS[5] the reader's member key (their read marker); ARGV[2] the message
-- id read up to, ARGV[3] the reader's own channel. Moves the marker forward
-- only, inside the script, so concurrent moves never take it back; an older
-- id changes nothing. Beyond the chat's newest message id is refused.
-- Messages above the marker are unread: the reader's own are never there
-- (sending moves the marker), deleted ones are gone from KEYS[3].
-- When the marker moved, the reader's sockets (and no one else's) get a
-- `read` event. Answers {'ok', marker, unread count}.
local wanted = tonumber(ARGV[2])
if wanted > tonumber(redis.call('HGET', KEYS[1], 'last_message_id') or 0) then
  return {'beyond_newest', 'message_id is beyond the newest message'}
end
local marker = tonumber(redis.call('GET', KEYS[5]) or 0)
local moved = wanted > marker
if moved then
  marker = wanted
  redis.call('SET', KEYS[5], marker)
end
local unread = redis.call('ZCOUNT', KEYS[3], '(' .. marker, '+inf')
if moved then
  redis.call('PUBLISH', ARGV[3], '{"type":"read","chat_id":' .. CHAT_ID .. ',"last_read_id":' .. marker
    .. ',"unread_count":' .. unread .. '}')
end
return {'ok', marker, unread}
