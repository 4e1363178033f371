-- Before a rename: KEYS[1] the creator's `created` index (user:{U}:created,
-- a hash: chat id -> the titles the chat may have, newline-separated),
-- ARGV[1] the chat id, ARGV[2] the new title. Adds the title to the chat's
-- entry, if the creator still has one (they have not left), keeping the
-- newest TITLES_KEPT. Written before the rename (another slot), so the entry
-- always holds the chat's real title, possibly with a few it no longer has:
-- the title check confirms each candidate against the chat itself.
local TITLES_KEPT = 8
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then
  return 0
end
local titles = {}
for title in string.gmatch(entry, '[^\n]+') do
  if title ~= ARGV[2] then
    titles[#titles + 1] = title
  end
end
titles[#titles + 1] = ARGV[2]
while #titles > TITLES_KEPT do
  table.remove(titles, 1)
end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(titles, '\n'))
return 1
