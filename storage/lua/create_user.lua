-- KEYS[1] the new user's hash; ARGV field, value, field, value... Refuses
-- (0) an id that is taken: on Redis Cluster a failover can take the id
-- counter back (replication is asynchronous) while the account it handed
-- out survives on another master.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
