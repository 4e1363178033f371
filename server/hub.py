"""The sockets open on this process, and the events Redis brings for them."""

import logging
from collections import defaultdict

from tornado.ioloop import IOLoop

from storage.events import encode_event

log = logging.getLogger("chat.live")


class Hub:
    """Keeps user id -> open sockets, and one subscription per user with any.

    A socket is anything with `user_id`, `session` (token digest),
    `is_ready` (sent `ready`), `deliver(event_json)`, `end_session()`,
    `going_away()` and the coroutine `session_is_valid()`.
    """

    def __init__(self, feed):
        self._sockets: dict[int, set] = defaultdict(set)
        self._feed = feed
        feed.on_user_event = self._deliver
        feed.session_listeners.append(self._session_ended)
        feed.connection_listeners.append(self._connection_changed)
        # True until the feed first connects too: sockets that joined while it
        # was down get `resync` when it comes up.
        self._lost_connection = not feed.connected

    def close_all(self) -> None:
        """Closes every socket with "going away" (shutdown)."""
        for socket in self._all():
            socket.going_away()

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    async def join(self, socket) -> None:
        """Returns once the user's subscription is confirmed (at once if it already is)."""
        self._sockets[socket.user_id].add(socket)
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
                socket.end_session()

    def _connection_changed(self, connected: bool) -> None:
        if not connected:
            self._lost_connection = True
            return
        if self._lost_connection:
            # Events published while the subscription was down are gone:
            # tell every client to catch up over HTTP, and re-check every
            # session, since a logout may have been among them.
            self._lost_connection = False
            # A socket still before `ready` needs neither: it checks its
            # session and sends `ready` (catch up from here) itself.
            for socket in (s for s in self._all() if s.is_ready):
                socket.deliver(encode_event("resync"))
                IOLoop.current().spawn_callback(socket.session_is_valid)
            if self.socket_count:
                log.warning("pub/sub back: told %d sockets to resync", self.socket_count)

    def _all(self) -> list:
        return [socket for sockets in self._sockets.values() for socket in sockets]
