-- Reads a chat's log after seq `since` (0: from the oldest event kept), at
-- most `limit` events, each exactly as it was published. `epoch` ('' for
-- any) must be the log's. Answers {'ok', newest seq, epoch, event...}, or
-- {'gone', why} when the log cannot serve it (another epoch, events trimmed,
-- a seq it never reached), and the client must re-read the chat's history.
local function read_log(chat, messages, log, prior, chat_id, since, limit, epoch)
  local info = redis.call('HMGET', chat, 'log_seq', 'log_epoch')
  local newest, current = tonumber(info[1]) or 0, info[2] or ''
  if epoch ~= '' and epoch ~= current then
    return {'gone', 'the chat log has another epoch: re-read the chat history'}
  end
  if since > newest then
    return {'gone', 'the chat log has no event ' .. since .. ': re-read the chat history'}
  end
  local entries = redis.call('XRANGE', log, since + 1, '+', 'COUNT', limit)
  local first = entries[1] and tonumber(string.match(entries[1][1], '^%d+'))
  if since > 0 and since < newest and first ~= since + 1 then
    return {'gone', 'the chat log no longer has the events after ' .. since .. ': re-read the chat history'}
  end
  local result = {'ok', newest, current}
  if not first then
    return result
  end
  -- Message versions replaced after the first of these events (ascending).
  local replaced = {}
  local versions = redis.call('ZRANGEBYSCORE', prior, '(' .. first, '+inf', 'WITHSCORES')
  for i = 1, #versions, 2 do
    local id, json = string.match(versions[i], '^(%d+):(.*)$')
    replaced[id] = replaced[id] or {}
    table.insert(replaced[id], {tonumber(versions[i + 1]), json})
  end
  for _, entry in ipairs(entries) do
    local seq, field, value = tonumber(string.match(entry[1], '^%d+')), entry[2][1], entry[2][2]
    if field == 'e' then
      table.insert(result, value)
    else
      -- A message event ('m') or an edit ('x'): the message as it was at `seq`.
      local message
      for _, version in ipairs(replaced[value] or {}) do
        if version[1] > seq then
          message = version[2]
          break
        end
      end
      message = message or redis.call('ZRANGEBYSCORE', messages, value, value)[1] or 'null'
      local kind = field == 'x' and 'message_edited' or 'message'
      table.insert(result, '{"type":"' .. kind .. '","chat_id":' .. chat_id .. ',"seq":' .. seq .. ',"message":' .. message .. '}')
    end
  end
  return result
end
