"""Live events over Redis pub/sub: one channel per user.

Chat changes are published by the chat scripts themselves (so they are in
the order of the changes); the rest by `publish`. A server process holds one
`EventSubscriber`: one pub/sub connection, subscribed to the channel of each
user with a socket open on that process.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

import redis.exceptions

from . import keys

log = logging.getLogger("chat.events")

# Published when a session (or, with "session": null, every session of the
# user) ends; the servers close the matching sockets.
SESSION_ENDED = "session_ended"
RETRY_MIN_SECS = 0.1
RETRY_MAX_SECS = 5.0


def encode_event(kind: str, **fields) -> str:
    """An event as compact JSON, its "type" first."""
    return json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


async def publish(redis_client, user_id: int, event: str) -> None:
    await redis_client.publish(keys.user_events_channel(user_id), event)


class EventSubscriber:
    """Receives the events of a changing set of users on one connection.

    `on_event(user_id, event_json)` is called for each event. If the
    connection drops, it is logged and re-established with every
    subscription; events published while it was down are not replayed.
    """

    def __init__(self, redis_client, on_event: Callable[[int, str], None], on_reconnect: Callable[[], None]):
        """`on_reconnect()` is called once the connection is back after a loss."""
        self._redis = redis_client
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self._recovering = False
        self._retry_delay = RETRY_MIN_SECS
        self._user_ids: set[int] = set()
        self._pubsub = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopped = False

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pubsub is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None

    async def subscribe(self, user_id: int) -> None:
        if self._stopped:
            return
        if self._task is None:  # started by the first socket, inside the running loop
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._user_ids.add(user_id)
        self._changed.set()
        await self._send("subscribe", user_id)

    async def unsubscribe(self, user_id: int) -> None:
        self._user_ids.discard(user_id)
        await self._send("unsubscribe", user_id)

    async def _send(self, command: str, user_id: int) -> None:
        if self._pubsub is None:
            return  # the next connection subscribes to everyone in _user_ids
        try:
            await getattr(self._pubsub, command)(keys.user_events_channel(user_id))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            pass  # _run reconnects and subscribes to everyone in _user_ids

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                delay = self._retry_delay
                log.warning("pub/sub connection lost (%s); reconnecting in %.1fs", exc, delay)
                self._recovering = True
                self._retry_delay = min(delay * 2, RETRY_MAX_SECS)
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None
        while not self._user_ids:  # redis-py cannot listen with no subscription
            self._changed.clear()
            await self._changed.wait()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*(keys.user_events_channel(u) for u in self._user_ids))
        if self._recovering:
            log.warning("pub/sub connection re-established")
            self._recovering = False
            self._retry_delay = RETRY_MIN_SECS
            self._on_reconnect()
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None:
                if not self._pubsub.subscribed:
                    return  # everyone left; wait for the next subscriber
                continue
            self._on_event(keys.user_id_of_events_channel(message["channel"]), message["data"])
