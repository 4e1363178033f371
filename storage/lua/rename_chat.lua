-- ARGV[2] the new title, ARGV[3] the event's body ('"title":...'). Any member may rename.
redis.call('HSET', KEYS[1], 'title', ARGV[2])
emit('chat_renamed', ARGV[3])
write_summary()
return {'ok'}
