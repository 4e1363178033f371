"""Open WebSockets per user and per client address, counted across processes
by claims that expire rather than by counters.

Each socket is one entry (socket id -> expiry, ms since the epoch) in its
user's set and in its address's set. The process holding the socket renews
its entries while the socket stays open and removes them when it closes; a
process that dies stops renewing, and its entries lapse by themselves, so a
crash never leaves a user locked out for longer than one claim's lifetime.
"""

from collections import defaultdict

from . import keys
from .presence import now_ms


class SocketCounts:
    def __init__(self, redis, scripts):
        self._redis = redis
        self._scripts = scripts

    async def claim(self, socket_id: str, user_id: int, address: str, caps: tuple[int, int], ttl_ms: int) -> str | None:
        """Counts a new socket for its user and its address, unless either has
        its cap (per user, per address) of live claims already: then counts
        nothing and answers which one is full, "user" or "address"."""
        now = now_ms()
        taken = []
        for kind, key, cap in (("user", keys.user_sockets_key(user_id), caps[0]),
                               ("address", keys.address_sockets_key(address), caps[1])):  # fmt: skip
            # One key per call: each may be on its own slot.
            args = [socket_id, now, now + ttl_ms, cap, 2 * ttl_ms]
            if not await self._scripts.run("claim_socket", [key], args):
                for key in taken:
                    await self._redis.zrem(key, socket_id)
                return kind
            taken.append(key)
        return None

    async def release(self, socket_id: str, user_id: int, address: str) -> None:
        await self._redis.zrem(keys.user_sockets_key(user_id), socket_id)
        await self._redis.zrem(keys.address_sockets_key(address), socket_id)

    async def renew(self, claims: list[tuple[str, int, str]], ttl_ms: int) -> None:
        """Renews these (socket id, user id, address) claims, in one pipeline.
        Only claims still there: one removed meanwhile (its socket closed) stays
        removed, whichever reaches Redis first."""
        expiry = now_ms() + ttl_ms
        by_key: dict[str, list[str]] = defaultdict(list)
        for socket_id, user_id, address in claims:
            by_key[keys.user_sockets_key(user_id)].append(socket_id)
            by_key[keys.address_sockets_key(address)].append(socket_id)
        pipe = self._redis.pipeline(transaction=False)
        for key, socket_ids in by_key.items():
            pipe.zadd(key, dict.fromkeys(socket_ids, expiry), xx=True)
            pipe.pexpire(key, 2 * ttl_ms)
        await pipe.execute()
