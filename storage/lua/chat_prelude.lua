-- Prepended to every chat script. KEYS[1] chat hash, KEYS[2] member set,
-- ARGV[1] acting user id. Checking membership inside the script that writes
-- means a member who just left can neither read nor post.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found', 'chat not found'}
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {'forbidden', 'you are not a member of this chat'}
end
