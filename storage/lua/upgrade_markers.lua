-- Schema 2 -> 3 for one chat. KEYS[1] chat hash, KEYS[2..] its members'
-- member keys. Schema 2 kept "1" in a member key; now it holds the user's
-- read marker: everything said before the upgrade counts as read (the
-- chat's newest message id). `read_markers` in the hash says this is done
-- (create_chat.lua sets it too), so running this again, even after a marker
-- of 1 was set for real, changes nothing.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'read_markers') == 1 then
  return 0
end
local newest = redis.call('HGET', KEYS[1], 'last_message_id') or 0
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == '1' then
    redis.call('SET', KEYS[i], newest)
  end
end
redis.call('HSET', KEYS[1], 'read_markers', 1)
return 1
