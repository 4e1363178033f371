"""Live events over Redis pub/sub.

Two kinds of channel:
- `user:{U}:events`, one per user: chat changes, published by the chat
  scripts themselves (so in the order of the changes), and `chat_created`.
- `sessions:ended`, one for everybody: every logout and account deletion,
  so each server process can close sockets and forget cached sessions.

A server process holds one `EventFeed`: one pub/sub connection, subscribed to
`sessions:ended` always and to the channel of each user with a socket open
on that process (once per user, not per socket).
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

import redis.exceptions

from . import keys
from .cluster import is_cluster

log = logging.getLogger("chat.events")

RETRY_MIN_SECS = 0.1
RETRY_MAX_SECS = 5.0
CONFIRM_SECS = 5.0  # longest a subscriber waits for Redis to confirm
PING_SECS = 10.0  # an idle connection is pinged this often; two silent periods mean it is dead
_LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def encode_event(kind: str, **fields) -> str:
    """An event as compact JSON, its "type" first."""
    return json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


async def publish(redis_client, user_id: int, event: str) -> None:
    await redis_client.publish(keys.user_events_channel(user_id), event)


class EventFeed:
    """This process's pub/sub connection, and who listens to what comes in.

    Listeners: `on_user_event(user_id, event_json)`; each of
    `session_listeners(user_id, digest_or_None)`; each of
    `connection_listeners(connected: bool)`, called when the subscription
    goes live and when it is lost. Events published while it was down are
    not replayed; it reconnects by itself, with backoff, and pings an idle
    connection so that a dead one is noticed.
    """

    def __init__(self, redis_client):
        self._redis = redis_client
        self.on_user_event: Callable[[int, str], None] = lambda user_id, event: None
        self.session_listeners: list[Callable[[int, str | None], None]] = []
        self.connection_listeners: list[Callable[[bool], None]] = []
        self.connected = False
        self._user_ids: set[int] = set()
        self._confirmed: set[str] = set()  # channels Redis has confirmed on this connection
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._pubsub = None
        self._task: asyncio.Task | None = None
        self._retry_delay = RETRY_MIN_SECS
        self._last_heard = 0.0

    def start(self) -> None:
        """Starts listening (inside the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_pubsub()
        self._set_connected(False)

    async def subscribe(self, user_id: int) -> None:
        """Subscribes to the user's channel and returns once Redis has confirmed
        it (or after CONFIRM_SECS, if the connection is down meanwhile)."""
        channel = keys.user_events_channel(user_id)
        self._user_ids.add(user_id)
        if channel in self._confirmed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        # Sent on any connection there is, live or still subscribing; with
        # none, the next one subscribes to everyone in _user_ids.
        await self._send("subscribe", channel)
        try:
            await asyncio.wait_for(waiter, CONFIRM_SECS)
        except asyncio.TimeoutError:
            waiters = self._waiters.get(channel, [])
            if waiter in waiters:
                waiters.remove(waiter)

    async def unsubscribe(self, user_id: int) -> None:
        channel = keys.user_events_channel(user_id)
        self._user_ids.discard(user_id)
        self._confirmed.discard(channel)
        await self._send("unsubscribe", channel)

    async def _send(self, command: str, channel: str) -> None:
        connection = self._pubsub.connection if self._pubsub is not None else None
        if connection is None or not connection.is_connected:
            return  # _listen subscribes everyone in _user_ids once connected
        try:
            # Written straight to the socket: PubSub.subscribe() would, on a
            # lost connection, reconnect from this task and read the
            # handshake's answer while _listen reads the same socket, and
            # both could wait forever. Here a failure only closes the
            # connection; _run then reconnects and subscribes everyone.
            await connection.send_command(command.upper(), channel, check_health=False)
        except _LOST:
            pass

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except Exception as exc:  # anything: this loop must outlive it
                delay = self._retry_delay
                if isinstance(exc, _LOST):
                    log.warning("pub/sub connection lost (%s); reconnecting in %.1fs", exc, delay)
                else:
                    log.error("pub/sub listener failed; reconnecting in %.1fs", delay, exc_info=exc)
                self._set_connected(False)
                self._retry_delay = min(delay * 2, RETRY_MAX_SECS)
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        await self._close_pubsub()
        self._confirmed.clear()
        self._pubsub = await self._new_pubsub()
        channels = [keys.SESSIONS_ENDED_CHANNEL, *(keys.user_events_channel(u) for u in self._user_ids)]
        await self._pubsub.subscribe(*channels)
        # Users who joined while that was being sent had no connection to send
        # on (see _send); from here on they do.
        missing = {keys.user_events_channel(u) for u in self._user_ids} - set(channels)
        if missing:
            await self._pubsub.subscribe(*missing)
        self._last_heard = time.monotonic()
        while True:
            message = await self._pubsub.get_message(timeout=PING_SECS)
            now = time.monotonic()
            if message is None:
                if now - self._last_heard > 2 * PING_SECS:
                    raise redis.exceptions.ConnectionError("no answer to ping")
                await self._pubsub.ping()
                continue
            self._last_heard = now
            self._handle(message)

    async def _new_pubsub(self):
        if not is_cluster(self._redis):
            return self._redis.pubsub()
        # Any node will do (PUBLISH reaches subscribers on every node): a
        # random one spreads the processes' subscriptions over the cluster.
        await self._redis.initialize()
        return self._redis.pubsub(node=self._redis.get_random_node())

    def _handle(self, message: dict) -> None:
        kind, channel = message["type"], message.get("channel")
        if kind == "unsubscribe":
            self._confirmed.discard(channel)
        elif kind == "subscribe":
            if channel == keys.SESSIONS_ENDED_CHANNEL or keys.user_id_of_events_channel(channel) in self._user_ids:
                self._confirmed.add(channel)  # (not when an unsubscribe overtook it)
            for waiter in self._waiters.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(None)
            if channel == keys.SESSIONS_ENDED_CHANNEL:
                self._retry_delay = RETRY_MIN_SECS
                self._set_connected(True)
        elif kind == "message":
            try:
                self._dispatch(channel, message["data"])
            except Exception:
                log.exception("an event listener failed on %s", channel)

    def _dispatch(self, channel: str, data: str) -> None:
        if channel == keys.SESSIONS_ENDED_CHANNEL:
            ended = json.loads(data)
            for listener in self.session_listeners:
                listener(ended["user_id"], ended["session"])
        else:
            self.on_user_event(keys.user_id_of_events_channel(channel), data)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if not connected:
            self._confirmed.clear()
        for listener in self.connection_listeners:
            listener(connected)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await pubsub.aclose()
