"""The chats this process follows for its sockets, each applied in seq order, once.

A `ChatStream` is one chat as this process sees it: the last seq it applied,
the local users whose sockets follow it, events that came early (waiting for
a gap to be filled from the log) and the last few events (so a socket that
attaches a moment late gets them without a Redis read). A `Follow` is what
one socket has of one chat.
"""

import asyncio
from collections import deque
from typing import NamedTuple

import orjson

from .fanout import SharedEvent

RECENT_EVENTS = 256  # per chat: events kept to attach a socket without reading the log


class Event(NamedTuple):
    seq: int | None  # None: a typing notice (neither numbered nor logged)
    data: SharedEvent  # exactly as published: encoded once, written to every socket
    kind: str
    subject: int | None  # the user a member_added / member_removed is about

    @classmethod
    def parse(cls, text: str) -> "Event":
        fields = orjson.loads(text)
        return cls(fields.get("seq"), SharedEvent(text.encode()), fields["type"], fields.get("user_id"))

    def removes(self, user_id: int) -> bool:
        return self.kind == "member_removed" and self.subject == user_id


class Follow:
    """One socket's view of one chat: it got every event with seq in
    (since, cursor] live; while a replay is being read (`held` is a list),
    live events wait there so that they follow the replay in order.

    `awaiting`: followed since the socket joined, and the client may still
    resume it (see Hub.ready): live events wait in `held` until it does, so
    that none overtakes an older one the resume will replay. Past the
    socket's bound on what one chat may hold, what waited is dropped
    (`overflowed`): the chat's log has it, and the socket catches up from
    there once the hold is over."""

    __slots__ = ("since", "cursor", "held", "held_bytes", "overflowed", "lock", "awaiting")

    def __init__(self, seq: int, *, awaiting: bool = False):
        self.since = self.cursor = seq
        self.held: list[Event] | None = [] if awaiting else None
        self.held_bytes = 0
        self.overflowed = False
        self.lock = asyncio.Lock()  # one replay at a time
        self.awaiting = awaiting

    def hold(self, event: Event, max_bytes: int) -> None:
        if self.overflowed:
            return  # the log has it
        self.held.append(event)
        self.held_bytes += len(event.data)
        if self.held_bytes > max_bytes:
            self.held.clear()
            self.held_bytes, self.overflowed = 0, True

    def start_over(self, seq: int) -> None:
        """The socket was told to re-read the chat (`resync`) up to `seq`: what
        waited is covered by that, or of a log that ended (another epoch)."""
        self.since = self.cursor = seq
        if self.held is not None:
            self.held, self.held_bytes = [], 0
        self.overflowed = False

    def take_held(self) -> list[Event]:
        """What waited, newer than what the socket has; the hold is over."""
        held = [event for event in self.held or () if event.seq > self.cursor]
        self.held, self.held_bytes, self.overflowed, self.awaiting = None, 0, False, False
        return held

    def wants(self, seq: int) -> bool:
        """Whether a replayed event has not reached the socket yet."""
        return seq > self.cursor or seq <= self.since


class ChatStream:
    __slots__ = ("chat_id", "seq", "epoch", "users", "pending", "recent", "lost", "filling", "busy")

    def __init__(self, chat_id: int):
        self.chat_id = chat_id
        self.seq: int | None = None  # last event applied; None until a position is known
        self.epoch: str | None = None
        self.users: set[int] = set()  # local users whose sockets follow it
        self.pending: dict[int, Event] = {}  # events past a gap, until the log fills it
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.lost = False  # the subscription dropped: catch up from the log once it is back
        self.filling = False  # a catch-up from the log is running
        self.busy = 0  # joins and replays under way that rely on it

    def since(self, seq: int) -> list[Event] | None:
        """The recent events after `seq`, or None if they are not all here."""
        missed = [event for event in self.recent if event.seq > seq]
        if self.seq is not None and self.seq > seq and (not missed or missed[0].seq != seq + 1):
            return None
        return missed

    def replaced(self, event: Event) -> bool:
        """Whether a recent event of the same seq differs from this one (a
        failover's new master numbered new events like lost ones; see
        chat_prelude.lua's `emit`). Too old to be in memory: False."""
        offset = self.seq - event.seq
        if offset >= len(self.recent):
            return False
        kept = self.recent[-1 - offset]
        return kept.seq == event.seq and kept.data != event.data

    def take_ready(self) -> list[Event]:
        """The pending events that now follow on in order (and drops stale ones)."""
        for seq in [s for s in self.pending if s <= self.seq]:
            del self.pending[seq]
        ready = []
        next_seq = self.seq + 1
        while next_seq in self.pending:
            ready.append(self.pending.pop(next_seq))
            next_seq += 1
        return ready
