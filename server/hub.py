"""The sockets open on this process, and the events Redis brings for them."""

import json
import logging
from collections import defaultdict

from storage.events import SESSION_ENDED, EventSubscriber, encode_event

log = logging.getLogger("chat.live")

CLOSE_SESSION_ENDED = 4001
CLOSE_GOING_AWAY = 1001


class Hub:
    """Keeps user id -> open sockets, and one subscription per user with any.

    A socket is anything with `user_id`, `session` (token digest),
    `deliver(event_json)` and `close(code, reason)`.
    """

    def __init__(self, redis_client):
        self._sockets: dict[int, set] = defaultdict(set)
        self._subscriber = EventSubscriber(redis_client, self._dispatch, self._after_reconnect)

    async def stop(self) -> None:
        for sockets in list(self._sockets.values()):
            for socket in list(sockets):
                socket.close(CLOSE_GOING_AWAY, "server shutting down")
        await self._subscriber.stop()

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    async def join(self, socket) -> None:
        first = not self._sockets[socket.user_id]
        self._sockets[socket.user_id].add(socket)
        if first:
            await self._subscriber.subscribe(socket.user_id)

    async def leave(self, socket) -> None:
        sockets = self._sockets.get(socket.user_id)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        if not sockets:
            del self._sockets[socket.user_id]
            await self._subscriber.unsubscribe(socket.user_id)

    def _dispatch(self, user_id: int, event: str) -> None:
        sockets = list(self._sockets.get(user_id, ()))
        if not sockets:
            return
        if event.startswith('{"type":"' + SESSION_ENDED + '"'):
            ended = json.loads(event)["session"]
            for socket in sockets:
                if ended is None or socket.session == ended:
                    socket.close(CLOSE_SESSION_ENDED, "session ended")
            return
        for socket in sockets:
            socket.deliver(event)

    def _after_reconnect(self) -> None:
        # Events published while the subscription was down are gone: tell
        # every client to catch up over HTTP.
        event = encode_event("resync")
        for sockets in list(self._sockets.values()):
            for socket in list(sockets):
                socket.deliver(event)
        log.info("told %d sockets to resync", self.socket_count)
