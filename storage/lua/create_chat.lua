-- KEYS: keys.chat_keys(C, owner): chat hash, member set, messages, summary,
-- log, prior versions, the owner's member key (their read marker; 0: nothing
-- read). ARGV[1] owner id, ARGV[2] title, ARGV[3] created_at, ARGV[4] the
-- summary JSON, ARGV[5] the chat id, ARGV[6] the new log's epoch.
-- `read_markers` in the hash says its member keys hold read markers (see
-- upgrade_markers.lua). Refuses (0) an id that is taken: on Redis
-- Cluster a failover can take the id counter back (replication is
-- asynchronous) while the chat it handed out survives on another master.
-- `log_replid`: this node's replication id, as chat_prelude.lua's `emit`
-- records it, so that the new log's first event keeps its epoch.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
redis.call('HSET', KEYS[1], 'id', ARGV[5], 'title', ARGV[2], 'owner_id', ARGV[1], 'creator_id', ARGV[1],
  'created_at', ARGV[3], 'last_message_id', 0, 'join_seq', 1, 'log_seq', 0, 'log_epoch', ARGV[6],
  'log_replid', string.sub(info, at + 14, at + 53), 'read_markers', 1)
redis.call('DEL', KEYS[5], KEYS[6])  -- a log left by a chat of this id that a failover lost
redis.call('ZADD', KEYS[2], 1, ARGV[1])
redis.call('SET', KEYS[7], 0)
redis.call('SET', KEYS[4], ARGV[4])
return 1
