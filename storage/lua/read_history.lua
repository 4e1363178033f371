-- KEYS[3] messages; ARGV[2] min score, ARGV[3] max score (ZRANGEBYSCORE
-- syntax), ARGV[4] limit, ARGV[5] '1' to take the newest end of the range.
if ARGV[5] == '1' then
  return {'ok', redis.call('ZREVRANGEBYSCORE', KEYS[3], ARGV[3], ARGV[2], 'LIMIT', 0, ARGV[4])}
end
return {'ok', redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])}
