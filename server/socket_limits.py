"""This process's part in the WebSocket caps: claims on the sockets it holds
(storage.socket_counts), renewed while they stay open.

A socket is claimed for its user and its client address before its upgrade
is accepted (a 429 past either cap), and released when it ends. The claims
are renewed every TTL/3 (`--presence-ttl-secs`, the lifetime of every claim
a process keeps in Redis), so those of a process that died lapse within
a TTL and its users may open sockets again.
"""

import asyncio
import itertools
import logging
import secrets
import socket

import redis.exceptions

from storage import RateLimited, StorageError, deadline

log = logging.getLogger("chat.sockets")

# What a refused client is told to wait: sockets close on their own schedule,
# so this is a polite pace for retrying, not a promise.
RETRY_AFTER_SECS = 10
STOP_SECS = 2.0  # on shutdown: longest wait for the releases to reach Redis
_REDIS_FAILED = (redis.exceptions.RedisError, StorageError, OSError)


class SocketLimits:
    """The open sockets this process counts in Redis, and the counts of refusals."""

    def __init__(self, storage, settings, stats):
        self._store = storage.sockets
        self._caps = (settings.ws_per_user, settings.ws_per_address)
        self._ttl_ms = settings.presence_ttl_secs * 1000
        self._timeout = settings.redis_timeout_secs
        self._stats = stats
        self._send_buffer_bytes = settings.ws_send_buffer_bytes
        self._prefix = secrets.token_hex(8)  # this process's part of every socket id
        self._numbers = itertools.count(1)
        self._claims: dict[str, tuple[str, int, str]] = {}  # socket id -> (socket id, user id, address)
        self._tasks: set[asyncio.Task] = set()
        self._beat: asyncio.TimerHandle | None = None

    async def claim(self, user_id: int, address: str) -> str:
        """Counts a new socket of the user from the address; its id (for
        `release`), or RateLimited if either already has its cap open."""
        socket_id = f"{self._prefix}:{next(self._numbers)}"
        full = await self._store.claim(socket_id, user_id, address, self._caps, self._ttl_ms)
        if full is not None:
            self._stats.refused[f"ws_per_{full}"] += 1
            cap = self._caps[0] if full == "user" else self._caps[1]
            whose = "this user" if full == "user" else "this address"
            raise RateLimited(f"too many open WebSockets for {whose} (at most {cap})", RETRY_AFTER_SECS)
        self._claims[socket_id] = (socket_id, user_id, address)
        self._schedule()
        return socket_id

    def release(self, socket_id: str) -> None:
        """The socket ended (or was never opened): its claims go, in the background."""
        claim = self._claims.pop(socket_id, None)
        if claim is not None:
            self._spawn(self._release(*claim))

    async def _release(self, socket_id: str, user_id: int, address: str) -> None:
        try:
            async with deadline.within(self._timeout):
                await self._store.release(socket_id, user_id, address)
        except _REDIS_FAILED as exc:
            # Not renewed any more: the claims lapse by themselves.
            log.warning("could not release a socket's claims: %s", exc)

    def cap_send_buffer(self, stream) -> None:
        """Caps the kernel's send buffer of an open socket's stream: uncapped, it
        grows to MBs for a client that stopped reading before the socket's own
        cap on unsent bytes (--ws-max-pending-bytes) sees any of them."""
        sock = stream.socket
        if self._send_buffer_bytes and sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
            except OSError:
                pass  # closed meanwhile

    def dropped_too_slow(self) -> None:
        """A socket was closed (4008): its client did not read fast enough."""
        self._stats.cut["ws_too_slow"] += 1

    def _schedule(self) -> None:
        """Renews the claims every TTL/3 while there are any: a timer, not a
        task, so that nothing is left pending when there is nothing to renew."""
        if self._beat is None:
            self._beat = asyncio.get_running_loop().call_later(self._ttl_ms / 3000, self._renew_soon)

    def _renew_soon(self) -> None:
        self._beat = None
        if self._claims:
            self._spawn(self._renew(list(self._claims.values())))
            self._schedule()

    async def _renew(self, claims: list[tuple[str, int, str]]) -> None:
        try:
            async with deadline.within(self._timeout):
                await self._store.renew(claims, self._ttl_ms)
        except _REDIS_FAILED as exc:
            log.warning("could not renew the sockets' claims: %s", exc)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Waits (a little) for the releases of closed sockets to reach Redis."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        for socket_id in list(self._claims):
            self.release(socket_id)
        try:
            async with asyncio.timeout(STOP_SECS):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        except TimeoutError:
            log.warning("sockets' claims left to lapse by themselves")
