-- ARGV[2] the new title. Any member may rename.
redis.call('HSET', KEYS[1], 'title', ARGV[2])
return {'ok'}
