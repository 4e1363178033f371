"""The sockets open on this process, the chats they follow, and the events Redis brings.

Every chat event carries its chat's `seq`. This process subscribes once per
chat any of its sockets needs, applies each chat's events in seq order,
exactly once (`ChatStream`), and hands each event to the sockets of the
members that follow the chat (`Follow`: never an event twice, never one
before an older one it still owes). What pub/sub did not bring (the
subscription was down, a socket attached late, a client resumes) is read
from the chat's log; only what the log cannot serve becomes `resync`.
Every write to a socket goes through `fanout` (server/fanout.py): in order,
in slices that let other work run between them.
"""

import asyncio
import logging
from collections import defaultdict

import orjson
from tornado.ioloop import IOLoop

from storage import deadline
from storage.events import encode_event

from .chat_streams import ChatStream, Event, Follow
from .fanout import Fanout, shared
from .log_replay import REDIS_FAILED, LogReplay
from .presence import Presence

log = logging.getLogger("chat.live")

# After `ready`, how long a socket's chat events wait for the client's
# `resume` of that chat (or its first other request): see Hub.ready.
RESUME_HOLD_SECS = 1.0


class Hub(LogReplay):
    """Keeps user id -> open sockets, chat id -> ChatStream.

    A socket is anything with `user_id`, `session` (token digest),
    `is_ready` (sent `ready`), `follows` (chat id -> Follow, kept here),
    `hold_max_bytes` (what one chat may hold in memory for a replay or a resume),
    `deliver(event)`, `end_session()`, `going_away()` and the coroutine
    `session_is_valid()`.
    """

    def __init__(
        self, storage, *, redis_timeout_secs: float = 2.0, presence_ttl_secs: float = 45.0,
        fanout_slice_sockets: int = 50,
    ):  # fmt: skip
        self._storage = storage
        self._feed = feed = storage.feed
        self._timeout = redis_timeout_secs
        self._sockets: dict[int, set] = defaultdict(set)
        self._streams: dict[int, ChatStream] = {}
        # Every event this hub writes goes through here, in order (see server.fanout).
        self.fanout = Fanout(slice_sockets=fanout_slice_sockets)
        self.presence = Presence(
            storage, ttl_secs=presence_ttl_secs, redis_timeout_secs=redis_timeout_secs,
            is_open=lambda socket: socket in self._sockets.get(socket.user_id, ()),
        )  # fmt: skip
        feed.on_user_event = self._user_event
        feed.on_chat_event = self._chat_event
        feed.session_listeners.append(self._session_ended)
        feed.connection_listeners.append(self._connection_changed)
        feed.chat_listeners.append(self._chat_subscription_changed)
        # True until the feed first connects: sockets that joined meanwhile
        # have their sessions and chats checked when it comes up.
        self._lost_connection = not feed.connected

    def close_all(self) -> None:
        """Closes every socket with "going away" (shutdown)."""
        for socket in self._all():
            socket.going_away()

    async def stop(self) -> None:
        """Drops this process's presence claims (after close_all)."""
        self.fanout.stop()
        await self.presence.stop()

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    @property
    def chat_count(self) -> int:
        """Chats this process follows (one subscription each)."""
        return len(self._streams)

    # Sockets coming and going.

    async def join(self, socket) -> None:
        """Returns once the socket follows every chat its user is in: each
        subscribed and confirmed, each event from here on on its way."""
        user_id = socket.user_id
        socket.follows = {}
        if not self._sockets[user_id]:
            self.presence.user_arrived(user_id)
        self._sockets[user_id].add(socket)
        await self._feed.subscribe(user_id)
        async with deadline.within(self._timeout):
            chat_ids = await self._storage.chats.ids_of(user_id)
        streams = await self._follow(chat_ids)
        try:
            # Read after subscribing: what happens after this read arrives live.
            async with deadline.within(self._timeout):
                positions = await self._storage.chats.positions(user_id, chat_ids)
            if socket in self._sockets.get(user_id, ()):
                for chat_id, (seq, epoch) in positions.items():
                    self._attach(socket, self._streams[chat_id], seq, epoch)
        finally:
            self._done_with(streams)

    def ready(self, socket) -> None:
        """`ready` was sent. A reconnecting client now resumes its chats; an
        event of a chat that arrived live meanwhile would overtake the older
        ones that resume replays (the client saw 225, 226 happened while it
        was away, 227 now). So each chat's live events wait until its resume,
        the socket's first request of another kind (`end_hold`: a client that
        does not resume) or RESUME_HOLD_SECS, whichever comes first. Past the
        socket's `hold_max_bytes` (a flood) they are dropped, and read from
        the chat's log when the hold ends."""
        IOLoop.current().call_later(RESUME_HOLD_SECS, self.end_hold, socket)

    def end_hold(self, socket) -> None:
        """Delivers what every chat still awaiting its resume held back."""
        for chat_id, follow in list(socket.follows.items()):
            stream = self._streams.get(chat_id)
            if follow.awaiting and stream is not None:
                follow.awaiting = False
                if not follow.lock.locked():  # (a replay under way releases them itself)
                    self._release_held(socket, stream, follow, locked=False)

    def leave(self, socket) -> None:
        sockets = self._sockets.get(socket.user_id)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        self.presence.forget(socket)
        for chat_id in list(socket.follows):
            self._unfollow(socket, chat_id)
        if not sockets:
            del self._sockets[socket.user_id]
            self._feed.unsubscribe(socket.user_id)
            self.presence.user_left(socket.user_id)

    async def resume(self, socket, chat_id: int, since: int, epoch: str | None) -> tuple[int, str]:
        """Sends the socket every event of the chat after `since` it has not
        had, then the live ones; (newest seq, epoch). Raises NotFound,
        Forbidden (checked in the read), Gone (the log cannot serve it)."""
        streams = await self._follow([chat_id])
        stream = streams[0]
        tentative = chat_id not in socket.follows
        if tentative:  # not followed yet (a chat joined a moment ago): the read checks membership
            socket.follows[chat_id] = Follow(since)
            stream.users.add(socket.user_id)
        try:
            seq, epoch = await self._replay(stream, [socket], since, user_id=socket.user_id, epoch=epoch, resuming=True)
            follow = socket.follows.get(chat_id)
            if follow is not None and epoch == stream.epoch:
                # Held live events that came after the read count too: the
                # ack never names a seq below one the socket already has.
                seq = max(seq, follow.cursor)
            # The caller's answer follows the replayed events. (Writes queued
            # ahead of them are not a storage outage: off the deadline.)
            async with deadline.excluded():
                await self.fanout.flushed()
            return seq, epoch
        except Exception:
            if tentative:
                self._unfollow(socket, chat_id)
            raise
        finally:
            self._done_with(streams)

    def _attach(self, socket, stream: ChatStream, seq: int, epoch: str) -> None:
        """The socket follows the chat from `seq`, read with the user's membership
        (unless it already does: a member_added notice came first), its live
        events held until the client resumes the chat (see `ready`)."""
        if stream.chat_id in socket.follows:
            return
        if stream.seq is None:
            stream.seq, stream.epoch = seq, epoch
            self._apply_ready(stream)
        elif epoch != stream.epoch:
            self._restart(stream, seq, epoch)
        stream.users.add(socket.user_id)
        follow = socket.follows[stream.chat_id] = Follow(seq, awaiting=True)
        missed = stream.since(seq)
        if missed is None:  # too far behind what is in memory: from the log, when the hold ends
            follow.overflowed = True
            return
        for event in missed:
            if self._offer(socket, stream, follow, event):
                break

    def _unfollow(self, socket, chat_id: int) -> None:
        socket.follows.pop(chat_id, None)
        stream = self._streams.get(chat_id)
        if stream is None:
            return
        if not any(chat_id in other.follows for other in self._sockets.get(socket.user_id, ())):
            stream.users.discard(socket.user_id)
        self._release_if_unused(stream)

    # Subscriptions.

    async def _follow(self, chat_ids) -> list[ChatStream]:
        """The streams of these chats, subscribed (each held until `_done_with`)."""
        streams = []
        for chat_id in chat_ids:
            stream = self._streams.get(chat_id)
            if stream is None:
                stream = self._streams[chat_id] = ChatStream(chat_id)
            stream.busy += 1
            streams.append(stream)
        confirmed = await asyncio.gather(*(self._feed.subscribe_chat(s.chat_id) for s in streams))
        for stream, live in zip(streams, confirmed):
            if not live:
                stream.lost = True  # caught up from the log once the subscription is confirmed
        return streams

    def _done_with(self, streams) -> None:
        for stream in streams:
            stream.busy -= 1
            self._release_if_unused(stream)

    def _release_if_unused(self, stream: ChatStream) -> None:
        if stream.users or stream.busy or self._streams.get(stream.chat_id) is not stream:
            return
        del self._streams[stream.chat_id]
        self._feed.unsubscribe_chat(stream.chat_id)

    def _chat_subscription_changed(self, chat_id: int, live: bool) -> None:
        stream = self._streams.get(chat_id)
        if stream is None:
            return
        if not live:
            stream.lost = True
        elif stream.lost and stream.seq is not None:
            # Resumes the chat from the last seq it applied, by itself.
            stream.lost = False
            self._catch_up(stream)

    # Events.

    def _chat_event(self, chat_id: int, text: str) -> None:
        stream = self._streams.get(chat_id)
        if stream is None:
            return
        event = Event.parse(text)
        if event.kind == "log_epoch":
            self._epoch_began(stream, orjson.loads(text))
        elif event.seq is None:
            self._typing(stream, event)
        else:
            self._receive(stream, event)

    def _epoch_began(self, stream: ChatStream, notice: dict) -> None:
        """The chat's log goes on under a new epoch after seq `after` (a
        failover or a restart of its Redis node; see chat_prelude.lua's
        `emit`): what this process holds of the old one may have been lost,
        and the next numbers are the new epoch's. Its sockets re-read the chat."""
        if stream.seq is None or notice["epoch"] == stream.epoch or notice["after"] > stream.seq:
            # Not followed from a position yet; already caught up into it; or
            # this copy lags behind where it begins: its catch-up (the gap
            # before the new events) finds the epoch changed and resyncs.
            # (That also keeps a late notice of an earlier life of the chat's
            # id, after a FLUSHALL in the tests, from setting it back.)
            return
        stream.pending.clear()  # numbered in the old epoch
        self._restart(stream, notice["after"], notice["epoch"])

    def _typing(self, stream: ChatStream, event: Event) -> None:
        """A typing notice: to the chat's members here, not the typist's own sockets."""
        for user_id in stream.users - {event.subject}:
            for socket in self._sockets.get(user_id, ()):
                if stream.chat_id in socket.follows:
                    self.fanout.send(event.data, socket)

    def _receive(self, stream: ChatStream, event: Event) -> None:
        if stream.seq is not None and event.seq <= stream.seq:
            if stream.replaced(event):
                # Not the event applied under that seq: after a failover that
                # lost the log's newest events, the new master went on under
                # a new epoch. The catch-up finds out (Gone) and resyncs.
                self._catch_up(stream)
            return  # had it already (live and from the log)
        if stream.seq is None or event.seq > stream.seq + 1:
            stream.pending[event.seq] = event
            if stream.seq is not None:
                self._catch_up(stream)  # a gap: something was missed
            return
        self._apply(stream, event)
        self._apply_ready(stream)

    def _apply_ready(self, stream: ChatStream) -> None:
        for event in stream.take_ready():
            self._apply(stream, event)

    def _apply(self, stream: ChatStream, event: Event) -> None:
        stream.seq = event.seq
        stream.recent.append(event)
        subject = event.subject
        if event.kind == "member_added" and subject in self._sockets and subject not in stream.users:
            # A user with sockets here joined: they follow it from this event on.
            stream.users.add(subject)
            for socket in self._sockets[subject]:
                socket.follows.setdefault(stream.chat_id, Follow(event.seq - 1))
        for user_id in list(stream.users):
            for socket in list(self._sockets.get(user_id, ())):
                follow = socket.follows.get(stream.chat_id)
                if follow is not None:
                    self._offer(socket, stream, follow, event)
        self._release_if_unused(stream)

    def _offer(self, socket, stream: ChatStream, follow: Follow, event: Event) -> bool:
        """Delivers a live event newer than any the socket has had; True if it
        ended the socket's membership (nothing more of this chat goes to it)."""
        if event.seq <= follow.cursor:
            return False
        if follow.held is not None:
            follow.hold(event, socket.hold_max_bytes)
            return False
        follow.cursor = event.seq
        self.fanout.send(event.data, socket)
        if event.removes(socket.user_id):
            self._unfollow(socket, stream.chat_id)
            return True
        return False

    def _user_event(self, user_id: int, text: str) -> None:
        if user_id not in self._sockets:
            return  # the channel is held for the read cache, not for a socket
        fields = orjson.loads(text)
        kind, chat_id = fields.get("type"), fields.get("chat_id")
        if kind == "member_added":
            stream = self._streams.get(chat_id)
            if stream is None or user_id not in stream.users:
                IOLoop.current().spawn_callback(self._follow_new, user_id, chat_id, fields["seq"] - 1)
            return  # else the chat's own channel brings it, in order
        if kind == "member_removed":
            stream = self._streams.get(chat_id)
            if stream is not None and user_id in stream.users and stream.seq is not None and stream.seq < fields["seq"]:
                self._catch_up(stream)  # the chat's channel lags or lost it: the removal must land
            return
        data = shared(text)
        for socket in list(self._sockets.get(user_id, ())):
            self.fanout.send(data, socket)
        if kind == "chat_created":
            IOLoop.current().spawn_callback(self._follow_new, user_id, chat_id, 0)

    # Sessions and the classic connection.

    def _session_ended(self, user_id: int, digest: str | None) -> None:
        for socket in list(self._sockets.get(user_id, ())):
            if digest is None or socket.session == digest:
                socket.end_session()

    def _connection_changed(self, connected: bool) -> None:
        if not connected:
            self._lost_connection = True
            return
        if self._lost_connection:
            # Logouts and per-user events published while it was down are
            # gone: re-check every session against Redis, and each user's
            # chats (a chat joined meanwhile is followed and announced by
            # `resync`). Chat events are caught up from the chats' logs.
            self._lost_connection = False
            for socket in (s for s in self._all() if s.is_ready):
                IOLoop.current().spawn_callback(socket.session_is_valid)
            for user_id in list(self._sockets):
                IOLoop.current().spawn_callback(self._recheck_chats, user_id)

    async def _recheck_chats(self, user_id: int) -> None:
        try:
            async with deadline.within(self._timeout):
                chat_ids = await self._storage.chats.ids_of(user_id)
                positions = await self._storage.chats.positions(user_id, chat_ids)
        except REDIS_FAILED:
            return  # the sockets' own session checks will close them if Redis stays away
        sockets = self._sockets.get(user_id, set())
        new = [c for c in positions if not any(c in s.follows for s in sockets)]
        if not new:
            return
        resync = shared(encode_event("resync"))
        for socket in list(sockets):
            self.fanout.send(resync, socket)
        for chat_id in new:
            await self._follow_new(user_id, chat_id, positions[chat_id][0])

    def _all(self) -> list:
        return [socket for sockets in self._sockets.values() for socket in sockets]
