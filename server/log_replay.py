"""Catching up from a chat's log: what pub/sub did not bring a socket or this process.

A part of the Hub (server/hub.py), kept apart by concern: the hub follows
chats live; this reads what it missed (a socket attached late, a user just
added, a client's resume, a lost subscription) and merges it in seq order.
It uses the hub's `_storage`, `_timeout`, `_sockets`, `_streams`, `fanout` and its
`_follow`/`_done_with`/`_receive`/`_apply_ready`/`_offer`/`_unfollow`/
`_release_if_unused`.
"""

import asyncio
import logging

import redis.exceptions
from tornado.ioloop import IOLoop

from storage import Gone, StorageError, deadline
from storage.chat_log import PAGE_MAX_EVENTS
from storage.events import encode_event

from .chat_streams import ChatStream, Event, Follow
from .fanout import shared

log = logging.getLogger("chat.live")

RETRY_SECS = 1.0  # a catch-up that could not read the log tries again after this
REDIS_FAILED = (redis.exceptions.RedisError, StorageError, OSError)


class LogReplay:
    async def _follow_new(self, user_id: int, chat_id: int, since: int) -> None:
        """The user's sockets follow a chat they were just put in, from `since`."""
        try:
            streams = await self._follow([chat_id])
        except REDIS_FAILED:
            return
        stream = streams[0]
        try:
            sockets = [s for s in self._sockets.get(user_id, ()) if chat_id not in s.follows]
            if not sockets:
                return
            for socket in sockets:
                socket.follows[chat_id] = Follow(since)
            stream.users.add(user_id)
            await self._replay(stream, sockets, since)
        except REDIS_FAILED as exc:
            log.warning("could not read chat %d's log for user %d: %s", chat_id, user_id, exc)
        finally:
            self._done_with(streams)

    async def _replay_quietly(self, chat_id: int, socket, since: int) -> None:
        """One socket's catch-up from the log after its hold dropped what
        waited (too much, or it joined too far behind what is in memory),
        its live events held meanwhile; where the log cannot serve it,
        `resync` for the chat."""
        try:
            streams = await self._follow([chat_id])
        except REDIS_FAILED as exc:
            log.warning("could not follow chat %d: %s", chat_id, exc)
            stream, follow = self._streams.get(chat_id), socket.follows.get(chat_id)
            if stream is not None and follow is not None and not follow.lock.locked():
                self._resync_socket(socket, stream, follow)
                self._release_held(socket, stream, follow, locked=False)
            return
        try:
            await self._replay(streams[0], [socket], since)
        except REDIS_FAILED as exc:
            log.warning("could not read chat %d's log: %s", chat_id, exc)
        finally:
            self._done_with(streams)

    def _resync_socket(self, socket, stream: ChatStream, follow: Follow) -> None:
        """The log cannot give the socket what it missed of the chat: it
        re-reads the chat, and goes on live from what this process applied."""
        self.fanout.send(shared(encode_event("resync", chat_id=stream.chat_id)), socket)
        follow.start_over(max(follow.cursor, stream.seq or 0))

    async def _replay(
        self, stream, sockets, since: int, *, user_id=None, epoch=None, resuming: bool = False
    ) -> tuple[int, str]:
        """Gives each socket the events after `since` it has not had, read from
        the log (checking `user_id`'s membership, if given), then what came
        live meanwhile; (newest seq, epoch). `resuming`: the client's own
        resume, which ends the socket's hold on the chat (Hub.ready); it is
        told of a failure (the error answers it), others get `resync`."""
        follows = [(s, s.follows[stream.chat_id]) for s in sockets if stream.chat_id in s.follows]
        dropped = []  # whether each follow's hold had dropped events (the read below has them)
        for _, follow in follows:
            await follow.lock.acquire()
            follow.held = follow.held if follow.held is not None else []
            dropped.append(follow.overflowed)
            follow.overflowed = False
        try:
            events, newest, epoch = await self._read(stream.chat_id, since, user_id, epoch)
        except BaseException:
            for (socket, follow), lost in zip(follows, dropped):
                follow.overflowed = follow.overflowed or lost  # still to be read: after the hold
                follow.awaiting = follow.awaiting and not resuming
                if not resuming and socket.follows.get(stream.chat_id) is follow:
                    self._resync_socket(socket, stream, follow)
                self._release_held(socket, stream, follow)
            raise
        if stream.seq is None:
            stream.seq, stream.epoch = newest, epoch
            self._apply_ready(stream)
        for socket, follow in follows:
            removed = self._send_in_order(socket, events, follow.wants)
            follow.since, follow.cursor = min(follow.since, since), max(follow.cursor, newest)
            if resuming:
                follow.awaiting = False
            self._release_held(socket, stream, follow, removed=removed)
        return newest, epoch

    def _release_held(
        self, socket, stream: ChatStream, follow: Follow, *, locked: bool = True, removed: bool = False
    ) -> None:
        """Ends a replay's hold (`locked`) or a join's (Hub.end_hold): the live
        events that waited follow, unless the chat still awaits its resume.
        `removed`: the replay ended with the user's removal."""
        if locked:
            follow.lock.release()
        current = socket.follows.get(stream.chat_id)
        if current is not follow:
            follow.take_held()
            if current is None:
                self._unfollow(socket, stream.chat_id)  # the socket left during the replay
            return
        if follow.awaiting and not removed:
            return  # still held: the resume (or Hub.end_hold) releases them
        if follow.overflowed and not removed:
            # What waited was dropped (too much to hold): read it from the log,
            # the live events waiting meanwhile.
            follow.take_held()
            follow.held = []
            IOLoop.current().spawn_callback(self._replay_quietly, stream.chat_id, socket, follow.cursor)
            return
        held = follow.take_held()

        def fresh(seq: int) -> bool:
            if seq <= follow.cursor:
                return False
            follow.cursor = seq
            return True

        if self._send_in_order(socket, held, fresh, removed=removed):
            self._unfollow(socket, stream.chat_id)

    def _send_in_order(self, socket, events: list[Event], wanted, *, removed: bool = False) -> bool:
        """Sends the socket those of `events` (in seq order) that `wanted(seq)`
        accepts; True if its user is out of the chat at the end. After a
        removal (or from the start, if `removed`), what happened before a
        later re-add among them is not the user's and is skipped."""
        user_id = socket.user_id
        back_at = _added_at(user_id, events) if removed else None
        if removed and back_at is None:
            return True
        for index, event in enumerate(events):
            if back_at is not None and event.seq < back_at or not wanted(event.seq):
                continue
            self.fanout.send(event.data, socket)
            if event.removes(user_id):
                back_at = _added_at(user_id, events[index + 1 :])
                if back_at is None:
                    return True
        return False

    async def _read(self, chat_id: int, since: int, user_id, epoch) -> tuple[list[Event], int, str]:
        """Every event of the chat's log after `since`, page by page."""
        events: list[Event] = []
        while True:
            async with deadline.within(self._timeout):
                if user_id is None:
                    page = await self._storage.log.read_unchecked(chat_id, since, epoch)
                else:
                    page = await self._storage.log.read(user_id, chat_id, since, PAGE_MAX_EVENTS, epoch)
            events += [Event.parse(text) for text in page.events]
            epoch = page.epoch
            if not page.events or events[-1].seq >= page.seq:
                return events, max(page.seq, since), epoch
            since = events[-1].seq

    def _catch_up(self, stream: ChatStream) -> None:
        if not stream.filling:
            stream.filling = True
            IOLoop.current().spawn_callback(self._fill, stream)

    async def _fill(self, stream: ChatStream) -> None:
        """Reads the chat's log from the last seq this process applied, until
        nothing is missing; an epoch that changed becomes `resync`."""
        stream.busy += 1
        try:
            while self._streams.get(stream.chat_id) is stream:
                try:
                    events, newest, epoch = await self._read(stream.chat_id, stream.seq, None, stream.epoch)
                except Gone:
                    async with deadline.within(self._timeout):
                        seq, epoch = await self._storage.log.position(stream.chat_id)
                    self._restart(stream, seq, epoch)
                    return
                except REDIS_FAILED as exc:
                    log.warning("could not read chat %d's log (%s); again in %.0fs", stream.chat_id, exc, RETRY_SECS)
                    await asyncio.sleep(RETRY_SECS)
                    continue
                for event in events:
                    self._receive(stream, event)
                if not events or not stream.pending:
                    return
        finally:
            stream.filling = False
            stream.busy -= 1
            self._release_if_unused(stream)

    def _restart(self, stream: ChatStream, seq: int, epoch: str) -> None:
        """The chat's log cannot give what this process missed (it was
        created afresh, or trimmed past it): its sockets re-read the chat."""
        log.warning("chat %d's log cannot be resumed: its sockets resync", stream.chat_id)
        stream.seq, stream.epoch = seq, epoch
        stream.recent.clear()
        self._apply_ready(stream)
        resync = shared(encode_event("resync", chat_id=stream.chat_id))
        for user_id in list(stream.users):
            for socket in self._sockets.get(user_id, ()):
                follow = socket.follows.get(stream.chat_id)
                if follow is not None:
                    follow.start_over(seq)
                    self.fanout.send(resync, socket)


def _added_at(user_id: int, events: list[Event]) -> int | None:
    """The seq of the first of these events that adds the user to the chat."""
    return next((e.seq for e in events if e.kind == "member_added" and e.subject == user_id), None)
