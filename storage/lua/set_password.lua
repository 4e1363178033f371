-- KEYS[1] user hash; ARGV[1] the hash the current password was checked
-- against, ARGV[2] the new hash. Compare-and-set: 0 when the account is gone
-- or being deleted, or its password changed since the check.
if redis.call('HEXISTS', KEYS[1], 'deleted_at') == 1 or redis.call('HGET', KEYS[1], 'password') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'password', ARGV[2])
return 1
