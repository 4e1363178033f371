"""Each user's share of this process's Redis connections.

Every request holds at most one pooled connection at a time, so a cap on
the requests of one user doing Redis work at once caps their share of the
pool (`--redis-max-connections`): however many connections one user opens,
the others keep getting answers. Requests past the cap wait for a turn, at
most `wait_secs`, then are refused with `Busy` (503 and Retry-After).
"""

import asyncio
import contextlib

from .errors import Busy

RETRY_AFTER_SECS = 1


class _Turns:
    __slots__ = ("free", "users")

    def __init__(self, per_user: int):
        self.free = asyncio.Semaphore(per_user)
        self.users = 0  # requests holding or waiting for a turn


class FairShare:
    """At most `per_user` requests of one user at once (in this process)."""

    def __init__(self, *, per_user: int):
        self._per_user = per_user
        self._turns: dict[int, _Turns] = {}
        self.refused = 0  # requests refused for want of a turn (for /metrics)

    @contextlib.asynccontextmanager
    async def turn(self, user_id: int | None, wait_secs: float):
        """Runs the body as one of the user's requests in flight; raises Busy
        if none is free within `wait_secs`. No user (a login): no limit."""
        if user_id is None:
            yield
            return
        turns = self._turns.get(user_id)
        if turns is None:
            turns = self._turns[user_id] = _Turns(self._per_user)
        turns.users += 1
        try:
            await self._acquire(turns.free, wait_secs)
            try:
                yield
            finally:
                turns.free.release()
        finally:
            turns.users -= 1
            if not turns.users:
                del self._turns[user_id]  # only users with requests in flight are kept

    async def _acquire(self, free: asyncio.Semaphore, wait_secs: float) -> None:
        if not await _acquired(free, wait_secs):
            self.refused += 1
            raise Busy(
                f"too many of your requests are in progress: try again in {RETRY_AFTER_SECS} s", RETRY_AFTER_SECS
            )


class Gate:
    """At most `size` of one costly kind of work at once in this process,
    whoever asks (history read from Redis: a page of up to
    --history-page-max-bytes): the rest wait for a turn, at most `wait_secs`,
    then are refused with `Busy`. Without it, a crowd of heavy reads (many
    users, each within their own share) takes the event loop in turns with
    everything else, and a cheap request waits behind all of them."""

    def __init__(self, *, size: int):
        self._free = asyncio.Semaphore(size)
        self.refused = 0  # (for /metrics)

    @contextlib.asynccontextmanager
    async def turn(self, wait_secs: float):
        if not await _acquired(self._free, wait_secs):
            self.refused += 1
            raise Busy(f"too many large reads are in progress: try again in {RETRY_AFTER_SECS} s", RETRY_AFTER_SECS)
        try:
            yield
        finally:
            self._free.release()


async def _acquired(free: asyncio.Semaphore, wait_secs: float) -> bool:
    """Takes the semaphore, waiting at most `wait_secs`; whether it was taken."""
    if not free.locked():
        await free.acquire()  # (returns at once)
        return True
    try:
        async with asyncio.timeout(max(0.0, wait_secs)):
            await free.acquire()
    except TimeoutError:
        return False
    return True
