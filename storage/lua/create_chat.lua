-- KEYS: keys.chat_keys(C, owner): chat hash, member set, messages, summary,
-- the owner's member key. ARGV[1] owner id, ARGV[2] title, ARGV[3]
-- created_at, ARGV[4] the summary JSON, ARGV[5] the chat id. Refuses (0) an id that is taken: on
-- Redis Cluster a failover can take the id counter back (replication is
-- asynchronous) while the chat it handed out survives on another master.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[5], 'title', ARGV[2], 'owner_id', ARGV[1],
  'created_at', ARGV[3], 'last_message_id', 0, 'join_seq', 1)
redis.call('ZADD', KEYS[2], 1, ARGV[1])
redis.call('SET', KEYS[5], 1)
redis.call('SET', KEYS[4], ARGV[4])
return 1
