"""The sockets open on this process, and the events Redis brings for them."""

import logging
from collections import defaultdict

from storage.events import encode_event

log = logging.getLogger("chat.live")

CLOSE_SESSION_ENDED = 4001
CLOSE_GOING_AWAY = 1001


class Hub:
    """Keeps user id -> open sockets, and one subscription per user with any.

    A socket is anything with `user_id`, `session` (token digest),
    `deliver(event_json)` and `close(code, reason)`.
    """

    def __init__(self, feed):
        self._sockets: dict[int, set] = defaultdict(set)
        self._feed = feed
        feed.on_user_event = self._deliver
        feed.session_listeners.append(self._session_ended)
        feed.connection_listeners.append(self._connection_changed)
        self._lost_connection = False

    def close_all(self) -> None:
        """Closes every socket with "going away" (shutdown)."""
        for socket in self._all():
            socket.close(CLOSE_GOING_AWAY, "server shutting down")

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    async def join(self, socket) -> None:
        first = not self._sockets[socket.user_id]
        self._sockets[socket.user_id].add(socket)
        if first:
            await self._feed.subscribe(socket.user_id)

    async def leave(self, socket) -> None:
        sockets = self._sockets.get(socket.user_id)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        if not sockets:
            del self._sockets[socket.user_id]
            await self._feed.unsubscribe(socket.user_id)

    def _deliver(self, user_id: int, event: str) -> None:
        for socket in list(self._sockets.get(user_id, ())):
            socket.deliver(event)

    def _session_ended(self, user_id: int, digest: str | None) -> None:
        for socket in list(self._sockets.get(user_id, ())):
            if digest is None or socket.session == digest:
                socket.close(CLOSE_SESSION_ENDED, "session ended")

    def _connection_changed(self, connected: bool) -> None:
        if not connected:
            self._lost_connection = True
            return
        if self._lost_connection:
            # Events published while the subscription was down are gone:
            # tell every client to catch up over HTTP.
            self._lost_connection = False
            for socket in self._all():
                socket.deliver(encode_event("resync"))
            log.warning("pub/sub back: told %d sockets to resync", self.socket_count)

    def _all(self) -> list:
        return [socket for sockets in self._sockets.values() for socket in sockets]
