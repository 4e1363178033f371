"""This process's read cache: each user's chat list and each chat's newest
page of history, answered from memory.

It is kept current by the channels that carry the live events: a chat's
channel announces every change to the chat (its summary, its messages, its
members), a user's channel every change to their own list (a chat created,
joined or left, a read marker moved). Writes made through this process also
invalidate at once, so a writer, and anyone reading through the same
process, sees the change on the next read; another process sees it once the
event has reached it (the pub/sub delay).

Invariants that keep it correct:
- A fill subscribes, and waits for Redis to confirm, *before* it reads:
  whatever changes after the read is announced to this process.
- A fill stores its answer only if nothing invalidated the entry while it
  read (`version`) and no pub/sub connection was lost meanwhile (`generation`).
- Losing any pub/sub connection empties every entry: what is published while
  a connection is down is not replayed to the cache.
- Membership is checked on every read: a page is served from memory only to
  a user a read from Redis found to be a member, and a `member_removed`
  (announced, or written here) takes them off at once.

An invalidated entry keeps its subscriptions, so the next read refills it
without subscribing again; the memory cap (least recently used first) is what
releases them.
"""

import asyncio
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import orjson

# Rough per-object costs, so that the cap counts what the strings do not show.
# Measured with tracemalloc (a list of 20 chats held 38.5 kB, a page of 100 messages 18.7 kB).
ENTRY_OVERHEAD_BYTES = 400
MESSAGE_OVERHEAD_BYTES = 8  # its list slot (the str itself is counted by sys.getsizeof)
CHAT_ID_OVERHEAD_BYTES = 500  # a held chat: set slots, the reverse index, the hold count
SUMMARY_OBJECT_BYTES = 800  # a chat summary kept as a dict, beyond its strings (counted as the JSON again)
READER_BYTES = 60  # a user in a page's set of readers
# Chat events after which a page of history is still exact.
PAGE_NEUTRAL_KINDS = frozenset({"chat_renamed", "member_added", "member_removed"})
# The holder name under which the cache keeps its subscriptions (the hub has its own).
HOLDER = "read-cache"


def activity_order(chat: dict) -> tuple:
    """The chat list's order, most recent activity first (sort descending)."""
    return chat["last_message_time"] or chat["created_at"], chat["id"]


class _ListEntry:
    """One user's chat list: each chat's summary as GET /api/chats shows it,
    and the JSON array it answers (encoded again after a change)."""

    __slots__ = ("key", "user_id", "chat_ids", "chats", "body", "version", "size")

    def __init__(self, user_id: int):
        self.key = ("list", user_id)
        self.user_id = user_id
        self.chat_ids: set[int] = set()  # chat channels held for it
        self.chats: dict[int, dict] | None = None  # chat id -> summary; None: not cached
        self.body: bytes | None = None
        self.version = 0
        self.size = ENTRY_OVERHEAD_BYTES


def _list_size(entry: _ListEntry) -> int:
    """What a list entry counts against the cap: its JSON, its summaries as objects, its holds."""
    return (
        ENTRY_OVERHEAD_BYTES + 2 * len(entry.body or b"") + SUMMARY_OBJECT_BYTES * len(entry.chats or ())
        + CHAT_ID_OVERHEAD_BYTES * len(entry.chat_ids)
    )  # fmt: skip


def _page_size(entry: "_PageEntry") -> int:
    """What a page entry counts against the cap: its messages (their real size) and its readers."""
    newest = entry.newest or ()
    return (
        ENTRY_OVERHEAD_BYTES + sum(sys.getsizeof(text) for text in newest) + MESSAGE_OVERHEAD_BYTES * len(newest)
        + READER_BYTES * len(entry.readers)
    )  # fmt: skip


class _PageEntry:
    """One chat's newest messages (JSON texts, newest first) and the users
    a read from Redis found to be members."""

    __slots__ = ("key", "chat_id", "readers", "newest", "complete", "resume_id", "version", "size")

    def __init__(self, chat_id: int):
        self.key = ("page", chat_id)
        self.chat_id = chat_id
        self.readers: set[int] = set()
        self.newest: list[str] | None = None
        self.complete = False  # `newest` is the whole history
        # The page's byte bound stopped `newest` here (the id of its last
        # message), so any longer page is `newest` too, and so cut; else 0.
        self.resume_id = 0
        self.version = 0
        self.size = ENTRY_OVERHEAD_BYTES


class ReadCache:
    """Chat lists and newest pages by user and chat, within `max_bytes`
    (0: off, every read goes to Redis)."""

    def __init__(self, feed, *, max_bytes: int, page_messages: int):
        self._feed = feed
        self.max_bytes = max_bytes
        self.page_messages = page_messages  # a page holds this many; larger limits go to Redis
        self._entries: OrderedDict[tuple, _ListEntry | _PageEntry] = OrderedDict()  # least recently used first
        self._listers: dict[int, set[int]] = {}  # chat id -> users whose list entry holds it
        self._chat_holds: dict[int, int] = {}  # chat id -> entries holding its channel
        self._generation = 0
        # Subscriptions under way, by ("user" | "chat", id): one each, kept from the garbage collector.
        self._subscribing: dict[tuple[str, int], asyncio.Task] = {}
        self.size = 0
        self.hits = {"chats": 0, "history": 0}
        self.misses = {"chats": 0, "history": 0}
        self.evictions = 0
        if self.enabled:
            feed.chat_event_listeners.append(self.chat_event)
            feed.user_event_listeners.append(self.user_event)
            feed.lost_listeners.append(self.drop_all)

    def stop(self) -> None:
        """Cancels the subscriptions under way (the process is stopping)."""
        for task in list(self._subscribing.values()):
            task.cancel()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def entry_count(self) -> int:
        return len(self._entries)

    # Reads.

    async def chat_list(
        self,
        user_id: int,
        read_ids: Callable[[int], Awaitable[list[int]]],
        read_list: Callable[[int, list[int]], Awaitable[list[dict]]],
    ) -> bytes:
        """The user's chat list as JSON: from memory, or `read_list(user_id, read_ids(user_id))`."""
        entry = self._entries.get(("list", user_id))
        if entry is not None and entry.chats is not None:
            self._entries.move_to_end(entry.key)
            self.hits["chats"] += 1
            if entry.body is None:  # a message changed it in place
                entry.body = orjson.dumps(sorted(entry.chats.values(), key=activity_order, reverse=True))
                self._resize(entry, _list_size(entry))
            return entry.body
        self.misses["chats"] += 1
        if not self.enabled:
            return orjson.dumps(await read_list(user_id, await read_ids(user_id)))
        entry = entry or self._add(_ListEntry(user_id))
        version, generation = entry.version, self._generation
        # Held (not just found live): another holder letting go must not leave it deaf.
        live = self._feed.keep_user_if_live(user_id, HOLDER) or self._subscribe(user_id=user_id)
        chat_ids = await read_ids(user_id)
        live = self._hold_chats(entry, chat_ids) and live
        self._resize(entry, _list_size(entry))  # it holds those chats from now on, stored or not
        chats = await read_list(user_id, chat_ids)
        body = orjson.dumps(chats)
        if live and self._still_valid(entry, version, generation):
            for chat_id in entry.chat_ids - set(chat_ids):  # chats left since the last fill
                self._release_chat(chat_id, entry.user_id)
            entry.chat_ids.intersection_update(chat_ids)
            self._entries.move_to_end(entry.key)
            entry.chats, entry.body = {chat["id"]: chat for chat in chats}, body
            entry.version += 1  # a fill that began earlier and ends later may have read older data
            self._resize(entry, _list_size(entry))
        return body

    async def newest_page(
        self, chat_id: int, user_id: int, limit: int, read_newest: Callable[[int], Awaitable[tuple[list[str], int]]]
    ) -> tuple[list[str], int]:
        """The chat's newest `limit` messages, newest first, for a member, and
        where the page's byte bound cut them short (0: not cut): from memory,
        or `read_newest(count)` (which checks membership and answers the same pair).

        A prefix of a page within the byte bound is within it too, and is
        what a read of fewer messages answers, so one page serves every limit."""
        entry = self._entries.get(("page", chat_id))
        if (
            entry is not None
            and entry.newest is not None
            and user_id in entry.readers
            and (limit <= len(entry.newest) or entry.complete or entry.resume_id)
        ):
            self._entries.move_to_end(entry.key)
            self.hits["history"] += 1
            return entry.newest[:limit], entry.resume_id if limit > len(entry.newest) else 0
        self.misses["history"] += 1
        if not self.enabled or limit > self.page_messages:
            return await read_newest(limit)
        entry = entry or self._add_page(chat_id)
        version, generation = entry.version, self._generation
        live = self._feed.keep_chat_if_live(chat_id, HOLDER) or self._subscribe(chat_id=chat_id)
        newest, resume_id = await read_newest(self.page_messages)
        if live and self._still_valid(entry, version, generation):
            self._entries.move_to_end(entry.key)
            entry.readers.add(user_id)
            entry.newest, entry.resume_id = newest, resume_id
            entry.complete = len(newest) < self.page_messages and not resume_id
            entry.version += 1  # a fill that began earlier and ends later may have read older data
            self._resize(entry, _page_size(entry))
        return newest[:limit], resume_id if limit > len(newest) else 0

    # What changes it.

    def chat_changed(self, chat_id: int, *, history: bool, removed: int | None = None) -> None:
        """A change to the chat: every list holding it is stale; its page too
        if `history`; `removed` is a user no longer a member."""
        for user_id in list(self._listers.get(chat_id, ())):
            self.user_changed(user_id)
        entry = self._entries.get(("page", chat_id))
        if entry is None:
            return
        entry.version += 1  # a fill under way may have read the old state
        if removed is not None:
            entry.readers.discard(removed)
        if history:
            self._drop_page(entry)

    def _drop_page(self, entry: _PageEntry) -> None:
        entry.version += 1
        if entry.newest is not None:
            entry.newest = None
            self._resize(entry, _page_size(entry))

    def message_sent(self, chat_id: int, seq: int, message: dict) -> None:
        """A message sent through this process, before its event arrives: read
        at once by anyone reading through this process."""
        self.message_arrived(chat_id, seq, message)

    def user_changed(self, user_id: int) -> None:
        """A change to the user's own chat list."""
        entry = self._entries.get(("list", user_id))
        if entry is None:
            return
        entry.version += 1
        if entry.chats is not None:
            entry.chats = entry.body = None
            self._resize(entry, _list_size(entry))

    def message_arrived(self, chat_id: int, seq: int, message: dict) -> None:
        """A new message (its event, or its send through this process, whichever
        comes first): the chat's page is stale, and each list holding the chat
        takes it in place (summary, order, unread count) if the chat's summary
        there is the event just before it; any other list is stale."""
        page = self._entries.get(("page", chat_id))
        if page is not None:
            self._drop_page(page)
        for user_id in list(self._listers.get(chat_id, ())):
            entry = self._entries[("list", user_id)]
            chat = entry.chats.get(chat_id) if entry.chats is not None else None
            if chat is not None and chat["seq"] >= seq:
                continue  # had it already (the send, then its event)
            if chat is None or chat["seq"] + 1 != seq:
                self.user_changed(user_id)  # not cached, or an event it never saw
                continue
            entry.version += 1  # a fill under way may have read the old state
            chat.update(
                seq=seq, last_message=message["content"], last_message_id=message["id"],
                last_message_time=message["time"], sender_id=message["sender_id"], last_message_edited_at=None,
            )  # fmt: skip
            if message["sender_id"] == user_id:  # sending moves the sender's read marker
                chat["last_read_id"], chat["unread_count"] = message["id"], 0
            else:
                chat["unread_count"] += 1
            entry.body = None

    def chat_event(self, chat_id: int, text: str) -> None:
        """An event from the chat's channel (feed listener)."""
        if chat_id not in self._chat_holds:
            return
        fields = orjson.loads(text)
        kind = fields.get("type")
        if kind == "log_epoch":
            self.chat_changed(chat_id, history=False)  # the lists show the chat's epoch
            return
        if fields.get("seq") is None:
            return  # a typing notice: nothing stored changed
        if kind == "message":
            self.message_arrived(chat_id, fields["seq"], fields["message"])
            return
        removed = fields.get("user_id") if kind == "member_removed" else None
        self.chat_changed(chat_id, history=kind not in PAGE_NEUTRAL_KINDS, removed=removed)

    def user_event(self, user_id: int, text: str) -> None:
        """An event from the user's own channel (feed listener): each one is
        about their list; their own removal also takes them off the chat's
        page at once (on a cluster this copy may come before the chat's own
        event, and the socket is told on the first to arrive)."""
        self.user_changed(user_id)
        if '"member_removed"' in text:
            fields = orjson.loads(text)
            page = self._entries.get(("page", fields.get("chat_id")))
            if fields.get("type") == "member_removed" and page is not None:
                page.version += 1
                page.readers.discard(user_id)

    def drop_all(self) -> None:
        """A pub/sub connection was lost: nothing cached can be trusted until refilled."""
        self._generation += 1
        for entry in self._entries.values():
            entry.version += 1
            if isinstance(entry, _ListEntry):
                entry.chats = entry.body = None
                size = _list_size(entry)
            else:
                entry.newest = None
                entry.readers.clear()
                size = _page_size(entry)
            self.size += size - entry.size
            entry.size = size

    # Entries and the subscriptions they hold.

    def _still_valid(self, entry, version: int, generation: int) -> bool:
        return entry.version == version and generation == self._generation and self._entries.get(entry.key) is entry

    def _add(self, entry):
        self._entries[entry.key] = entry
        self.size += entry.size
        self._evict_over_cap()
        return entry

    def _resize(self, entry, size: int) -> None:
        self.size += size - entry.size
        entry.size = size
        self._evict_over_cap()

    def _evict_over_cap(self) -> None:
        while self.size > self.max_bytes and len(self._entries) > 1:
            _, entry = self._entries.popitem(last=False)
            self.size -= entry.size
            self.evictions += 1
            self._release(entry)

    def _release(self, entry) -> None:
        entry.version += 1
        if isinstance(entry, _ListEntry):
            for chat_id in entry.chat_ids:
                self._release_chat(chat_id, entry.user_id)
            entry.chat_ids.clear()
            self._feed.unsubscribe(entry.user_id, holder=HOLDER)
        else:
            self._release_chat(entry.chat_id, None)

    def _hold_chats(self, entry: _ListEntry, chat_ids: list[int]) -> bool:
        """Holds the channel of each chat in the list; True if all are live already."""
        if self._entries.get(entry.key) is not entry:
            return False  # evicted meanwhile: it must hold nothing
        for chat_id in chat_ids:
            if chat_id not in entry.chat_ids:
                entry.chat_ids.add(chat_id)
                self._listers.setdefault(chat_id, set()).add(entry.user_id)
                self._chat_holds[chat_id] = self._chat_holds.get(chat_id, 0) + 1
        live = True
        for chat_id in chat_ids:
            if not self._feed.keep_chat_if_live(chat_id, HOLDER):
                live = self._subscribe(chat_id=chat_id)
        return live

    def _subscribe(self, *, user_id: int | None = None, chat_id: int | None = None) -> bool:
        """Starts subscribing to a user's or chat's channel, without waiting:
        a read never waits for pub/sub (a connection being restored would make
        it wait for that); it is answered from Redis and not kept, and a later
        read fills the entry once the subscription is confirmed. False."""
        channel = ("user", user_id) if user_id is not None else ("chat", chat_id)
        if channel in self._subscribing:
            return False
        if user_id is not None:
            subscribing = self._feed.subscribe(user_id, holder=HOLDER)
        else:
            subscribing = self._feed.subscribe_chat(chat_id, holder=HOLDER)
        self._subscribing[channel] = task = asyncio.ensure_future(subscribing)
        task.add_done_callback(lambda _: self._subscribed(channel, user_id, chat_id))
        return False

    def _subscribed(self, channel: tuple, user_id: int | None, chat_id: int | None) -> None:
        """Lets go of a channel whose last holder went while it was being subscribed."""
        del self._subscribing[channel]
        if user_id is not None and ("list", user_id) not in self._entries:
            self._feed.unsubscribe(user_id, holder=HOLDER)
        if chat_id is not None and chat_id not in self._chat_holds:
            self._feed.unsubscribe_chat(chat_id, holder=HOLDER)

    def _add_page(self, chat_id: int) -> _PageEntry:
        """A new page entry, holding the chat's channel until it is evicted."""
        self._chat_holds[chat_id] = self._chat_holds.get(chat_id, 0) + 1
        return self._add(_PageEntry(chat_id))

    def _release_chat(self, chat_id: int, user_id: int | None) -> None:
        """One holder (a user's list, or the chat's page: None) lets go of the chat's channel."""
        if user_id is not None:
            listers = self._listers.get(chat_id)
            if listers is not None:
                listers.discard(user_id)
                if not listers:
                    del self._listers[chat_id]
        holds = self._chat_holds.get(chat_id, 0) - 1
        if holds > 0:
            self._chat_holds[chat_id] = holds
            return
        self._chat_holds.pop(chat_id, None)
        self._feed.unsubscribe_chat(chat_id, holder=HOLDER)
