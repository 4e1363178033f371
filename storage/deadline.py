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


@contextlib.asynccontextmanager
async def within(seconds: float):
    """Raises Unavailable if the body runs longer than `seconds`."""
    try:
        async with asyncio.timeout(seconds) as timeout:
            token, length_token = _current.set(timeout), _length.set(seconds)
            try:
                yield
            finally:
                _current.reset(token)
                _length.reset(length_token)
    except TimeoutError:
        if timeout.expired():
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
