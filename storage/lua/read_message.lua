-- KEYS[3] messages; ARGV[2] message id. Any member may read it.
-- Answers {'ok', the message JSON as history shows it}.
local found = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])[1]
if not found then
  return {'not_found', 'message not found'}
end
return {'ok', found}
