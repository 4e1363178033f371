-- Member ids in join order, and the owner.
return {'ok', redis.call('HGET', KEYS[1], 'owner_id'), redis.call('ZRANGE', KEYS[2], 0, -1)}
