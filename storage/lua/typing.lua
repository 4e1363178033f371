-- KEYS[5] the actor's typing key in this chat; ARGV[2] how long one notice
-- holds off the next (ms). Publishes {"type":"typing","chat_id","user_id"}
-- on the chat's channel, neither numbered nor logged (no `emit`), unless a
-- notice of the actor's went out within that time. Answers {'ok', 1 if sent}.
if not redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[2]) then
  return {'ok', 0}
end
redis.call(PUBLISH, CHANNEL, '{"type":"typing","chat_id":' .. CHAT_ID .. ',"user_id":' .. ARGV[1] .. '}')
return {'ok', 1}
