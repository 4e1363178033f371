"""One pub/sub connection that holds a set of channels through reconnects.

`Subscriber` keeps the channels it was asked for, subscribes them again
after every reconnect, and tells its owner which channels are live (Redis
confirmed them) and which were lost. Commands are written straight to the
socket: redis-py's PubSub.subscribe() would, on a lost connection, reconnect
from the caller's task and read the handshake's answer while the listener
reads the same socket, and both could wait forever. Here a failure only
closes the connection; the listener reconnects and subscribes everyone.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import redis.exceptions

log = logging.getLogger("chat.events")

RETRY_MIN_SECS = 0.1
RETRY_MAX_SECS = 5.0
CONFIRM_SECS = 5.0  # longest a subscriber waits for Redis to confirm
PING_SECS = 10.0  # an idle connection is pinged this often; two silent periods mean it is dead
LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class Subscriber:
    """A pub/sub connection (classic or sharded channels) and its channels.

    `owner` gets `on_message(channel, data)`, `on_confirmed(channel)` (a
    subscription is live, first time or after a reconnect) and
    `on_lost(channels)` (the connection dropped: these are not live until
    confirmed again). `anchor`: a channel always held (a connection needs
    one to listen). `before_connect()`, if set, runs before a connection is
    made again after one was lost (a shard connection checks there which
    channels are still its node's).
    """

    def __init__(self, name: str, make_pubsub: Callable[[], Awaitable], owner, *, sharded: bool = False,
                 anchor: str | None = None):  # fmt: skip
        self.name = name
        self.channels: set[str] = set()  # wanted
        self.confirmed: set[str] = set()
        self.connected = False
        self._make_pubsub = make_pubsub
        self._owner = owner
        self._sharded = sharded
        self._anchor = anchor
        self.before_connect: Callable[[], Awaitable] | None = None
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._pubsub = None
        self._task: asyncio.Task | None = None
        self._retry_delay = RETRY_MIN_SECS
        self._tasks: set[asyncio.Task] = set()  # sends under way (kept from the garbage collector)
        self._wanted = asyncio.Event()  # set while there is a channel to hold
        self._failed = False  # the last connection was lost (before_connect runs before the next)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()
        self._lose()

    async def subscribe(self, channel: str) -> bool:
        """Subscribes and returns once Redis has confirmed it (True), or after
        CONFIRM_SECS (False: the connection is down; it is subscribed when it is back)."""
        self.channels.add(channel)
        self._wanted.set()
        if channel in self.confirmed:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        await self._send("SSUBSCRIBE" if self._sharded else "SUBSCRIBE", channel)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), CONFIRM_SECS)
            return True
        except asyncio.TimeoutError:
            waiters = self._waiters.get(channel, [])
            if waiter in waiters:
                waiters.remove(waiter)
            return channel in self.confirmed

    def adopt(self, channel: str) -> None:
        """Takes over a channel from another connection, without waiting."""
        self.channels.add(channel)
        self._wanted.set()
        self._spawn(self._send("SSUBSCRIBE" if self._sharded else "SUBSCRIBE", channel))

    def unsubscribe(self, channel: str) -> None:
        """Forgets the channel now; Redis is told a moment later, unless it
        was asked for again meanwhile (so a quick leave and join keep it)."""
        self.channels.discard(channel)
        self.confirmed.discard(channel)
        self._spawn(self._unsubscribe_if_unwanted(channel))

    async def _unsubscribe_if_unwanted(self, channel: str) -> None:
        if channel not in self.channels:
            await self._send("SUNSUBSCRIBE" if self._sharded else "UNSUBSCRIBE", channel)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, command: str, channel: str) -> None:
        connection = self._pubsub.connection if self._pubsub is not None else None
        if connection is None or not connection.is_connected:
            return  # _listen subscribes every wanted channel once connected
        with contextlib.suppress(*LOST):
            await connection.send_command(command, channel, check_health=False)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except Exception as exc:  # anything: this loop must outlive it
                delay = self._retry_delay
                if isinstance(exc, LOST):
                    log.warning("pub/sub connection %s lost (%s); reconnecting in %.1fs", self.name, exc, delay)
                else:
                    log.error("pub/sub listener %s failed; reconnecting in %.1fs", self.name, delay, exc_info=exc)
                await self._close()
                self._lose()
                self._failed = True
                self._retry_delay = min(delay * 2, RETRY_MAX_SECS)
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        if self.before_connect is not None and self._failed:
            await self.before_connect()
        if not self._anchor and not self.channels:
            # Nothing to listen to (a shard whose chats all ended): no connection until there is.
            self._wanted.clear()
            await self._wanted.wait()
        self._pubsub = await self._make_pubsub()
        wanted = {*self.channels, *([self._anchor] if self._anchor else [])}
        if self._sharded:
            # One at a time: one SSUBSCRIBE may only name channels of one slot.
            for channel in wanted:
                await self._pubsub.ssubscribe(channel)
        elif wanted:
            await self._pubsub.subscribe(*wanted)
        # Channels asked for while that was sent had no connection to go to
        # (see _send); from here on they do.
        for channel in self.channels - wanted:
            await self._send("SSUBSCRIBE" if self._sharded else "SUBSCRIBE", channel)
        last_heard = time.monotonic()
        while True:
            message = await self._pubsub.get_message(timeout=PING_SECS)
            now = time.monotonic()
            if message is None:
                if not self._anchor and not self.channels:
                    await self._close()
                    return  # idle: _run waits in _listen for a channel to hold
                if now - last_heard > 2 * PING_SECS:
                    raise redis.exceptions.ConnectionError("no answer to ping")
                await self._pubsub.ping()
                continue
            last_heard = now
            self._handle(message)

    def _handle(self, message: dict) -> None:
        kind, channel = message["type"], message.get("channel")
        if kind in ("message", "smessage"):
            try:
                self._owner.on_message(channel, message["data"])
            except Exception:
                log.exception("an event listener failed on %s", channel)
        elif kind in ("subscribe", "ssubscribe"):
            self.connected = True
            self._failed = False
            self._retry_delay = RETRY_MIN_SECS
            if channel in self.channels or channel == self._anchor:  # (not when an unsubscribe overtook it)
                self.confirmed.add(channel)
                self._owner.on_confirmed(channel)
            for waiter in self._waiters.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(None)
        elif kind in ("unsubscribe", "sunsubscribe"):
            self.confirmed.discard(channel)
            if self._sharded and channel in self.channels:
                # Redis dropped it (its slot moved to another node): reconnecting
                # finds the channel's new home.
                raise redis.exceptions.ConnectionError(f"{channel} was moved")

    def _lose(self) -> None:
        self.connected = False
        lost, self.confirmed = self.confirmed, set()
        if lost:
            self._owner.on_lost(lost)

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await pubsub.aclose()
