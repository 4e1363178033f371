-- KEYS[3] messages; ARGV[2] min score, ARGV[3] max score (ZRANGEBYSCORE
-- syntax), ARGV[4] limit, ARGV[5] '1' to take the newest end of the range,
-- ARGV[6] the most bytes of message JSON a page holds (each message counts
-- one more, its comma); the first message is taken whatever its size.
-- Answers the page and the id of its last message when the byte bound cut
-- it short of the limit (where the next page starts), else 0. Read in
-- batches, each starting past the last, so a cut page never makes Redis
-- build the rest of a large range.
local limit, max_bytes, newest = tonumber(ARGV[4]), tonumber(ARGV[6]), ARGV[5] == '1'
local low, high = ARGV[2], ARGV[3]
local page, size, last_id = {}, 0, 0
while #page < limit do
  local count = math.min(limit - #page, 100)
  local batch
  if newest then
    batch = redis.call('ZREVRANGEBYSCORE', KEYS[3], high, low, 'WITHSCORES', 'LIMIT', 0, count)
  else
    batch = redis.call('ZRANGEBYSCORE', KEYS[3], low, high, 'WITHSCORES', 'LIMIT', 0, count)
  end
  for i = 1, #batch, 2 do
    size = size + #batch[i] + 1
    if size > max_bytes and #page > 0 then
      return {'ok', page, last_id}
    end
    page[#page + 1], last_id = batch[i], tonumber(batch[i + 1])
  end
  if #batch < 2 * count then
    break
  end
  if newest then high = '(' .. last_id else low = '(' .. last_id end
end
return {'ok', page, 0}
