-- KEYS[1] user hash; ARGV field, value, field, value... Sets them only on a
-- live account (0 otherwise), so an update racing a deletion cannot bring
-- back part of a deleted user. An empty value deletes the field.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deleted_at') == 1 then
  return 0
end
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
