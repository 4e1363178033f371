"""bcrypt, off the event loop: a small pool of low-priority threads.

The threads run at the lowest CPU priority (Linux: per-thread nice 19), so
a burst of logins waits for CPU rather than taking it from the event loop
that serves everyone else. At most `queue` hashes wait for a thread: past
that, a login (registration, password change) is refused at once with
`Busy` rather than queued behind everyone else's.
"""

import asyncio
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from . import deadline
from .errors import Busy

BCRYPT_MAX_BYTES = 72  # bcrypt 5 raises on longer passwords
_LOWEST_PRIORITY = 19


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _LOWEST_PRIORITY)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: run at normal priority


class PasswordHasher:
    def __init__(self, *, cost: int, threads: int, queue: int):
        self._cost = cost
        self._pool = ThreadPoolExecutor(threads, "bcrypt", initializer=_lower_priority)
        self._threads = threads
        self._max_in_flight = threads + queue
        self._in_flight = 0  # hashes running or waiting for a thread
        self._hash_secs = 0.25  # how long the last hash took (cost 12 on a common core)
        self._dummy_hash: bytes | None = None
        self.refused = 0  # hashes refused because the queue was full (for /metrics)

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._cost)
        return (await self._run(bcrypt.hashpw, password.encode(), salt)).decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        """Whether the password matches; with no hash (unknown user) it costs the same and fails."""
        password_bytes = password.encode()
        if len(password_bytes) > BCRYPT_MAX_BYTES:
            return False  # no registered password is this long
        if hashed is None:
            await self._run(bcrypt.checkpw, password_bytes, await self._dummy())
            return False
        return await self._run(bcrypt.checkpw, password_bytes, hashed.encode())

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def _dummy(self) -> bytes:
        if self._dummy_hash is None:
            self._dummy_hash = await self._run(bcrypt.hashpw, b"not a password", bcrypt.gensalt(self._cost))
        return self._dummy_hash

    async def _run(self, function, *args):
        if self._in_flight >= self._max_in_flight:
            self.refused += 1
            # Roughly when the queue will have moved on by its own length.
            secs = max(1, math.ceil(self._hash_secs * self._in_flight / self._threads))
            raise Busy(f"too many logins in progress: try again in {secs} s", secs)
        self._in_flight += 1
        try:
            async with deadline.excluded():  # a queue of logins is not a storage outage
                return await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, function, *args)
        finally:
            self._in_flight -= 1

    def _timed(self, function, *args):
        """Runs on a bcrypt thread; notes how long a hash takes."""
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            self._hash_secs = time.monotonic() - started
