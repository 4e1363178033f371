-- ARGV[2] the new title, ARGV[3] the event to publish. Any member may rename.
redis.call('HSET', KEYS[1], 'title', ARGV[2])
write_summary()
publish_to_members(ARGV[3])
return {'ok'}
