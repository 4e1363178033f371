"""Who is online, kept by claims that expire rather than by a counter.

Each server process claims the users it holds sockets for in their
`user:{U}:presence` set (process id -> expiry, ms since the epoch) and renews
its claims while the sockets stay; a user is online while some claim has
not expired. A process that dies without a goodbye stops renewing, and its
claims lapse by themselves. Claiming a user who had no live claim, and
dropping the last one, publish the change on the user's presence channel in
the same step (so the channel's order is the order of the changes);
nobody publishes a lapse: the processes watching that user find it by
reading (see server.presence).
"""

import time

from . import keys
from .cluster import mget
from .events import encode_event

# The presence set itself is only cleared away this long after its last
# renewal: expired claims in it count for nothing (and a claim's expiry is
# never this far ahead).
KEY_TTL_SECS = 24 * 3600


def now_ms() -> int:
    return int(time.time() * 1000)


class PresenceStore:
    def __init__(self, redis, scripts):
        self._redis = redis
        self._scripts = scripts

    async def arrive(self, process_id: str, user_id: int, ttl_ms: int) -> bool:
        """Claims the user for this process; True if that brought them online."""
        now = now_ms()
        event = encode_event("presence", user_id=user_id, online=True)
        args = [process_id, now, now + ttl_ms, keys.presence_channel(user_id), event, KEY_TTL_SECS]
        return bool(await self._scripts.run("presence_arrive", [keys.user_presence_key(user_id)], args))

    async def depart(self, process_id: str, user_id: int) -> bool:
        """Drops this process's claim; True if that took the user offline."""
        event = encode_event("presence", user_id=user_id, online=False)
        args = [process_id, now_ms(), keys.presence_channel(user_id), event]
        return bool(await self._scripts.run("presence_depart", [keys.user_presence_key(user_id)], args))

    async def renew(self, process_id: str, user_ids, ttl_ms: int) -> None:
        """Renews this process's claims on these users (one pipeline)."""
        expiry = now_ms() + ttl_ms
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zadd(keys.user_presence_key(user_id), {process_id: expiry})
            pipe.expire(keys.user_presence_key(user_id), KEY_TTL_SECS)
        await pipe.execute()

    async def online(self, user_ids: list[int]) -> list[bool]:
        """Whether each user is online now (one pipeline)."""
        if not user_ids:
            return []
        now = now_ms()
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zcount(keys.user_presence_key(user_id), f"({now}", "+inf")
        return [count > 0 for count in await pipe.execute()]

    async def visible_to(self, watcher_id: int, user_ids: list[int]) -> list[int]:
        """Those of the users who share a chat with the watcher (the watcher
        too), in the order given: one SMEMBERS, then one MGET of member keys."""
        others = [u for u in user_ids if u != watcher_id]
        chat_ids = [int(c) for c in await self._redis.smembers(keys.user_chats_key(watcher_id))] if others else []
        shared = set()
        if chat_ids:
            # The user's index may hold a chat they left: their own member key decides.
            names = [keys.chat_member_key(c, u) for u in [watcher_id, *others] for c in chat_ids]
            values = await mget(self._redis, names)
            rows = [values[i : i + len(chat_ids)] for i in range(0, len(values), len(chat_ids))]
            mine = rows[0]
            for user_id, row in zip(others, rows[1:]):
                if any(m is not None and v is not None for m, v in zip(mine, row)):
                    shared.add(user_id)
        return [u for u in user_ids if u == watcher_id or u in shared]
