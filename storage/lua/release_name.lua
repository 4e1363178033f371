-- KEYS[1] name key; ARGV[1] the owner id. Deletes only if still that owner's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
