-- Prepended to every chat script. KEYS[1] chat hash, KEYS[2] member set,
-- KEYS[3] messages, KEYS[4] summary, KEYS[5] the chat's log, KEYS[6] prior
-- message versions; ARGV[1] acting user id, ARGV[2] the chat's channel,
-- ARGV[3] the chat id, ARGV[4] how many events the log keeps at least,
-- ARGV[5] 'PUBLISH' or 'SPUBLISH' (a shard channel on a Redis 7 cluster).
-- The log's keys and arguments are taken out here, so each script's own
-- keys start at KEYS[5] and its own arguments at ARGV[2].
-- Checking membership inside the script that writes means a member who
-- just left can neither read nor post.
local LOG, PRIOR = table.remove(KEYS, 5), table.remove(KEYS, 5)
local CHANNEL, CHAT_ID = table.remove(ARGV, 2), table.remove(ARGV, 2)
local LOG_CAP, PUBLISH = table.remove(ARGV, 2), table.remove(ARGV, 2)

-- Drops the prior message versions no event still in the log needs.
local function trim_prior()
  local oldest = redis.call('XRANGE', LOG, '-', '+', 'COUNT', 1)[1]
  if oldest then
    redis.call('ZREMRANGEBYSCORE', PRIOR, '-inf', string.match(oldest[1], '^%d+'))
  end
end

-- This node's replication id (INFO's master_replid; a replica has its
-- master's). Redis picks a new one when a node becomes a master (a promoted
-- replica) and at every start of a master, clean or not (verified on 6.2 and
-- 7.0): it names one unbroken history of writes. About 3 µs.
local function replication_id()
  local info = redis.call('INFO', 'replication')
  local at = string.find(info, 'master_replid:', 1, true)
  return string.sub(info, at + 14, at + 53)
end

-- Numbers the event, appends it to the chat's log and publishes it once, to
-- the chat's channel, in the same step as the change. `body` is the JSON of
-- the event's own fields without braces; a message event is logged as its
-- message id (`message_id`) under `field` ('m' unless given: 'x' for an
-- edit), any other as its JSON. Answers the event and its seq.
local function emit(kind, body, message_id, field)
  -- The log goes on under its epoch only on the node that wrote it last, in
  -- the same life (see replication_id): a replica promoted after a failover,
  -- or a master restarted from its files, may lack the newest events it
  -- published, and must not number new events like them. Its log (what
  -- survived, and what follows) gets a new epoch: clients that resume with
  -- the old one get 410 and re-read the chat. An absent `log_epoch` (a chat
  -- of schema 1 met during an upgrade) or `log_replid` (last written by a
  -- version before it was recorded) is treated the same way.
  -- The channel hears of the new epoch first (`log_epoch`, for server
  -- processes only: the numbers after `after` are the new epoch's), since
  -- its events do not carry it: a process whose copy ends where the new
  -- master's does could not tell the new "9" from the lost one.
  local replid = replication_id()
  if redis.call('HGET', KEYS[1], 'log_replid') ~= replid then
    local now = redis.call('TIME')
    local epoch = string.sub(replid, 1, 8) .. string.format('%x%05x', now[1], now[2])
    redis.call('HSET', KEYS[1], 'log_epoch', epoch, 'log_replid', replid)
    local after = tonumber(redis.call('HGET', KEYS[1], 'log_seq')) or 0
    redis.call(PUBLISH, CHANNEL,
      '{"type":"log_epoch","chat_id":' .. CHAT_ID .. ',"epoch":"' .. epoch .. '","after":' .. after .. '}')
  end
  local seq = redis.call('HINCRBY', KEYS[1], 'log_seq', 1)
  local event = '{"type":"' .. kind .. '","chat_id":' .. CHAT_ID .. ',"seq":' .. seq .. ',' .. body .. '}'
  if message_id then
    redis.call('XADD', LOG, 'MAXLEN', '~', LOG_CAP, seq .. '-0', field or 'm', message_id)
  else
    redis.call('XADD', LOG, 'MAXLEN', '~', LOG_CAP, seq .. '-0', 'e', event)
  end
  if redis.call('EXISTS', PRIOR) == 1 then
    trim_prior()  -- the log may just have been trimmed
  end
  redis.call(PUBLISH, CHANNEL, event)
  return event, seq
end

-- Keeps a message's version from before `seq` (the event replacing it), for
-- replays of the older events that showed it.
local function keep_prior(seq, message_id, message)
  redis.call('ZADD', PRIOR, seq, message_id .. ':' .. message)
end

-- KEYS[4] is the chat's summary, what GET /api/chats lists: rewritten by
-- every script that emits an event (the summary carries the newest seq).
local function write_summary()
  local info = redis.call('HMGET', KEYS[1], 'id', 'title', 'owner_id', 'created_at', 'log_seq', 'log_epoch')
  local summary = {
    id = tonumber(info[1]), title = info[2], owner_id = tonumber(info[3]), created_at = info[4],
    last_message = cjson.null, last_message_id = cjson.null, last_message_time = cjson.null, sender_id = cjson.null,
    last_message_edited_at = cjson.null, seq = tonumber(info[5]) or 0, epoch = info[6] or '',
  }
  local newest = redis.call('ZRANGE', KEYS[3], -1, -1)[1]
  if newest then
    local message = cjson.decode(newest)
    summary.last_message, summary.last_message_id = message.content, message.id
    summary.last_message_time, summary.sender_id = message.time, message.sender_id
    summary.last_message_edited_at = message.edited_at or cjson.null
  end
  redis.call('SET', KEYS[4], cjson.encode(summary))
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found', 'chat not found'}
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {'forbidden', 'you are not a member of this chat'}
end
