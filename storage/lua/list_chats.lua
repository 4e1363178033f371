-- GET /api/chats for one user: KEYS in threes, one three per chat: its
-- summary, the user's member key (their read marker) and its messages.
-- Answers, flat, for each chat the user is a member of: the summary, the
-- marker and the unread count (messages above the marker). A chat without
-- both (gone, or a stale index entry) is left out. One call for many
-- chats: on a single server all of them, on a cluster those of one slot.
local out = {}
for i = 1, #KEYS, 3 do
  local summary, marker = redis.call('GET', KEYS[i]), redis.call('GET', KEYS[i + 1])
  if summary and marker then
    out[#out + 1] = summary
    out[#out + 1] = marker
    out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 2], '(' .. marker, '+inf')
  end
end
return out
