-- A user's index of the chats they created: KEYS[1] user:{U}:created (chat
-- id -> the titles it may have, newline-separated, the newest last) and
-- KEYS[2] user:{U}:titles (title -> the ids of the chats whose entry names
-- it, newline-separated), kept in step. ARGV[1] what to do:
--   'create' ARGV[2] chat id, ARGV[3] title: a chat the user is creating;
--            also puts it in KEYS[3], user:{U}:chats (one write, not two);
--   'rename' ARGV[2] chat id, ARGV[3] title: before a rename; only if the
--            creator still has an entry (has not left). Written before the
--            rename (another slot), so the entry always holds the chat's real
--            title, possibly with a few it no longer has: the title check
--            confirms each candidate against the chat itself (has_title.lua);
--   'forget' ARGV[2] chat id: the creator left the chat;
--   'rebuild': KEYS[2] made again from KEYS[1] (the schema 5 upgrade).
-- Answers 1 if the index changed, else 0.
local TITLES_KEPT = 8
local created, by_title, op, chat = KEYS[1], KEYS[2], ARGV[1], ARGV[2]

local function lines(text)
  local found = {}
  if text then
    for line in string.gmatch(text, '[^\n]+') do
      found[#found + 1] = line
    end
  end
  return found
end

local function list(title, chat_id)
  local ids = lines(redis.call('HGET', by_title, title))
  for _, id in ipairs(ids) do
    if id == chat_id then
      return
    end
  end
  ids[#ids + 1] = chat_id
  redis.call('HSET', by_title, title, table.concat(ids, '\n'))
end

local function unlist(title, chat_id)
  local ids = {}
  for _, id in ipairs(lines(redis.call('HGET', by_title, title))) do
    if id ~= chat_id then
      ids[#ids + 1] = id
    end
  end
  if #ids == 0 then
    redis.call('HDEL', by_title, title)
  else
    redis.call('HSET', by_title, title, table.concat(ids, '\n'))
  end
end

if op == 'rebuild' then
  redis.call('DEL', by_title)
  local entries = redis.call('HGETALL', created)
  for i = 1, #entries, 2 do
    for _, title in ipairs(lines(entries[i + 1])) do
      list(title, entries[i])
    end
  end
  return 1
end

local entry = redis.call('HGET', created, chat)
if op == 'forget' then
  for _, title in ipairs(lines(entry)) do
    unlist(title, chat)
  end
  return redis.call('HDEL', created, chat)
end
if op == 'rename' and not entry then
  return 0
end
if op == 'create' then
  redis.call('SADD', KEYS[3], chat)
end
local titles = {}
for _, title in ipairs(lines(entry)) do
  if title ~= ARGV[3] then
    titles[#titles + 1] = title
  end
end
titles[#titles + 1] = ARGV[3]
while #titles > TITLES_KEPT do
  unlist(table.remove(titles, 1), chat)
end
redis.call('HSET', created, chat, table.concat(titles, '\n'))
list(ARGV[3], chat)
return 1
