"""How long one request may wait on Redis, counted once per request.

redis-py can time every command itself (`socket_timeout`), but it pays for
that with a task and a timer per command, which the benchmark showed to be
a large part of a request's CPU. Instead a request runs `within(seconds)`:
one timer for all its Redis work. Waiting for a bcrypt thread (`excluded()`)
does not count: a queue of logins is not a storage outage.
"""

import asyncio
import contextlib
import contextvars

from .errors import Unavailable

_current: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar("deadline", default=None)
_length: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline_length", default=None)


class within:
    """Raises Unavailable if the body runs longer than `seconds`.

    A class rather than an @asynccontextmanager: every request enters one
    or two of these, and the generator's machinery cost about as much as
    the timer itself (8 against 12 µs, measured)."""

    __slots__ = ("_seconds", "_timeout", "_tokens")

    def __init__(self, seconds: float):
        self._seconds = seconds

    async def __aenter__(self) -> None:
        self._timeout = asyncio.timeout(self._seconds)
        await self._timeout.__aenter__()
        self._tokens = (_current.set(self._timeout), _length.set(self._seconds))

    async def __aexit__(self, kind, error, traceback) -> bool | None:
        _current.reset(self._tokens[0])
        _length.reset(self._tokens[1])
        try:
            return await self._timeout.__aexit__(kind, error, traceback)
        except TimeoutError:
            if self._timeout.expired():
                raise Unavailable("storage did not answer in time") from None
            raise


@contextlib.asynccontextmanager
async def excluded():
    """Stops the current deadline's clock for the duration of the body."""
    timeout = _current.get()
    if timeout is None or timeout.when() is None:
        yield
        return
    loop = asyncio.get_running_loop()
    remaining = timeout.when() - loop.time()
    timeout.reschedule(None)
    try:
        yield
    finally:
        timeout.reschedule(loop.time() + remaining)


@contextlib.asynccontextmanager
async def step():
    """A fresh deadline as long as the request's, for one step of a long job
    (run under `excluded()`): each step is bounded, the job is not."""
    seconds = _length.get()
    if seconds is None:
        yield
        return
    async with within(seconds):
        yield


def remaining() -> float | None:
    """Seconds left before the current deadline, or None outside one."""
    timeout = _current.get()
    if timeout is None or timeout.when() is None:
        return None
    return max(0.0, timeout.when() - asyncio.get_running_loop().time())
