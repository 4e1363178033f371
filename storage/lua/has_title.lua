-- The 409 of POST /api/chats for one user: KEYS in twos, one two per chat
-- the user's `created` index names with this title: the chat's hash and its
-- member set. ARGV[1] the title, ARGV[2] the user id. Answers {1} if one of those
-- chats, with the user still a member, has that title, else {}. One call
-- for many chats: on a cluster, one per slot (like list_chats.lua).
for i = 1, #KEYS, 2 do
  if redis.call('HGET', KEYS[i], 'title') == ARGV[1] and redis.call('ZSCORE', KEYS[i + 1], ARGV[2]) then
    return {1}
  end
end
return {}
