"""Rate limits kept in Redis, so they hold across server processes.

Counted attempts (failed logins, successful ones, registrations) use a
sliding-window log: an attempt is reserved before the costly work, which
makes the limit exact under concurrency. A reservation holds its place for
RESERVATION_SECS only; once the outcome is known it either counts for the
whole window (a failed login, a successful one, an account made) or is
removed. So logins in flight can fill the window for a
moment, but never for long, and never with a misleading Retry-After. Sends use
a burst and a steady rate. Both read Redis's clock, not this host's.
"""

import math
import uuid
from collections import Counter

from . import keys
from .errors import RateLimited

# Longest an attempt in progress (a password check) holds its place.
RESERVATION_SECS = 30


class RateLimits:
    """The service's limits; `enabled=False` turns every one of them off."""

    def __init__(self, redis, scripts, settings):
        self._redis = redis
        self._scripts = scripts
        self._s = settings
        self.enabled = settings.rate_limits
        self.refused: Counter[str] = Counter()  # refusals by limit (for /metrics)

    async def login_attempt(self, folded_name: str, address: str) -> "LoginAttempt":
        """Reserves a login for the name and the address, in the windows of
        failed logins and of successful ones; raises RateLimited."""
        window = self._s.login_window_secs
        failure = await self._reserve(
            [
                (keys.login_failures_by_name_key(folded_name), self._s.login_failures_per_name),
                (keys.login_failures_by_address_key(address), self._s.login_failures_per_address),
            ],
            window,
            "too many failed logins",
            "login_failures",
        )
        try:
            success = await self._reserve(
                [
                    (keys.logins_by_name_key(folded_name), self._s.logins_per_name),
                    (keys.logins_by_address_key(address), self._s.logins_per_address),
                ],
                window,
                "too many logins",
                "logins",
            )
        except RateLimited:
            await failure.give_back()
            raise
        return LoginAttempt(failure, success)

    async def registration(self, address: str) -> "Attempt":
        """Reserves an account creation for the address; raises RateLimited."""
        return await self._reserve(
            [(keys.registrations_by_address_key(address), self._s.registrations_per_address)],
            self._s.registration_window_secs,
            "too many new accounts from this address",
            "registrations",
        )

    async def message(self, user_id: int) -> None:
        """Takes one send from the user's bucket; raises RateLimited."""
        if not self.enabled:
            return
        interval_ms = math.ceil(1000 / self._s.messages_per_sec)
        wait_ms = await self._scripts.run(
            "rate_bucket", [keys.message_rate_key(user_id)], [interval_ms, self._s.message_burst]
        )
        if wait_ms:
            self.refused["messages"] += 1
            raise _limited("too many messages", wait_ms)

    async def _reserve(self, limits: list[tuple[str, int]], window_secs: int, message: str, kind: str) -> "Attempt":
        attempt = Attempt(self._redis, self._scripts, uuid.uuid4().hex)
        if not self.enabled:
            return attempt
        attempt.window_ms = window_secs * 1000
        for key, limit in limits:
            wait_ms = await self._scripts.run(
                "rate_window", [key], [limit, attempt.window_ms, attempt.id, RESERVATION_SECS * 1000]
            )
            if wait_ms:
                await attempt.give_back()
                self.refused[kind] += 1
                raise _limited(message, wait_ms)
            attempt.keys.append(key)
        return attempt


class Attempt:
    """One reserved attempt in one or more sliding windows."""

    def __init__(self, redis, scripts, attempt_id: str):
        self._redis = redis
        self._scripts = scripts
        self.id = attempt_id
        self.keys: list[str] = []
        self.window_ms = 0

    async def count(self) -> None:
        """The attempt counts (a failed login, an account made): for the whole window from now."""
        for key in self.keys:  # one key per call: each may be on its own slot
            await self._scripts.run("rate_count", [key], [self.window_ms, self.id])

    async def give_back(self) -> None:
        """The attempt does not count after all."""
        for key in self.keys:  # one key per call: each may be on its own slot
            await self._redis.zrem(key, self.id)

    async def succeeded(self) -> None:
        """A login with the right password: the name's earlier failures are
        forgotten (the first window), and this attempt counts nowhere."""
        if self.keys:
            await self._redis.delete(self.keys[0])
        for key in self.keys[1:]:
            await self._redis.zrem(key, self.id)


class LoginAttempt:
    """A login's places in the windows of failures and of successes: once
    its outcome is known, it counts in one of them and leaves the other."""

    def __init__(self, failure: Attempt, success: Attempt):
        self._failure = failure
        self._success = success

    async def count(self) -> None:
        """The login failed."""
        await self._failure.count()
        await self._success.give_back()

    async def succeeded(self) -> None:
        """The right password: the name's failures are forgotten, the login counts as one."""
        await self._failure.succeeded()
        await self._success.count()

    async def give_back(self) -> None:
        """Neither (the password could not be checked)."""
        await self._failure.give_back()
        await self._success.give_back()


def _limited(message: str, wait_ms: int) -> RateLimited:
    secs = max(1, math.ceil(wait_ms / 1000))
    return RateLimited(f"{message}: try again in {secs} s", secs)
