-- Schema 1 -> 2 for one chat. KEYS[1] chat hash, KEYS[2] summary; ARGV[1]
-- the epoch of its new (empty) log, made on this node (`log_replid`, as
-- create_chat.lua). A chat that has a log already is left alone, so running
-- this again changes nothing.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'log_epoch') == 1 then
  return 0
end
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
redis.call('HSET', KEYS[1], 'log_seq', 0, 'log_epoch', ARGV[1], 'log_replid', string.sub(info, at + 14, at + 53))
local stored = redis.call('GET', KEYS[2])
if stored then
  local summary = cjson.decode(stored)
  summary.seq, summary.epoch = 0, ARGV[1]
  redis.call('SET', KEYS[2], cjson.encode(summary))
end
return 1
