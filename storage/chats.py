"""Chats and their members.

The chat's member set is the authority on membership; `user:{id}:chats` is
an index of it for listing. Each step is atomic inside one hash slot, and
the index is written so that a crash between the two sides is invisible: it
may hold a chat the user is not in (listing checks the member set and skips
it), but never lacks one they are in.
"""

import asyncio
import contextlib

import orjson

import redis.exceptions
from redis.exceptions import LockError

from . import deadline, keys
from .cluster import by_slot, fresh_id, mget, run_per_group
from .errors import Conflict, Forbidden, NotFound
from .events import encode_event, event_body, publish
from .read_cache import activity_order
from .records import new_chat_summary, new_epoch, utc_now_iso
from .users import ALLOW_ADDS_CONTACTS, is_live

CREATE_LOCK_SECS = 5
LOCK_WAIT_SECS = 1  # at most half what is left of the deadline: a busy lock is a 409, not a 503
TYPING_HOLD_MS = 3000  # one typing notice per user and chat in this time; extras are dropped


class ChatStore:
    def __init__(self, redis, scripts, cache):
        self._redis = redis
        self._scripts = scripts
        self._cache = cache  # storage.read_cache: told of every change made here

    async def create(self, user_id: int, title: str) -> int:
        """A new chat owned by the user; raises Conflict if they have one of that title."""
        # The title check reads many chats, so it cannot share a script with
        # the write; a per-user lock makes a double submit create one chat.
        lock = self._redis.lock(
            keys.user_chat_creation_lock_key(user_id),
            timeout=CREATE_LOCK_SECS,
            blocking_timeout=min(LOCK_WAIT_SECS, (deadline.remaining() or LOCK_WAIT_SECS * 2) / 2),
        )
        if not await lock.acquire():
            raise Conflict("another chat is being created; try again")
        try:
            if await self._has_created(user_id, title):
                raise Conflict("you already have a chat with this title")
            chat_id = await self._create(user_id, title)
        finally:
            self._cache.user_changed(user_id)
            # Bounded even after the request's deadline fired: this runs then too.
            with contextlib.suppress(LockError, TimeoutError, redis.exceptions.RedisError):
                async with asyncio.timeout(CREATE_LOCK_SECS):
                    await lock.release()
        await self._undo_if_deleted(user_id, chat_id)
        await publish(self._redis, user_id, encode_event("chat_created", chat_id=chat_id, title=title))
        return chat_id

    async def _create(self, user_id: int, title: str) -> int:
        async def create(chat_id: int) -> bool:
            # Indexes first (see above); the title check reads each chat's own hash.
            index_keys = [*keys.created_index_keys(user_id), keys.user_chats_key(user_id)]
            await self._scripts.run("created_index", index_keys, ["create", chat_id, title])
            created_at = utc_now_iso()
            epoch = new_epoch()
            summary = new_chat_summary(chat_id, title, user_id, created_at, epoch)
            if await self._scripts.run(
                "create_chat", keys.chat_keys(chat_id, user_id), [user_id, title, created_at, summary, chat_id, epoch]
            ):
                return True
            await self._unindex(user_id, chat_id)  # a taken id (see create_chat.lua): the next is tried
            return False

        return await fresh_id(self._redis, keys.CHAT_ID_SEQ, create)

    async def list_json(self, user_id: int) -> bytes:
        """The user's chats as a JSON array (see `list_for`), from this process's
        read cache when it holds them."""
        return await self._cache.chat_list(user_id, self.ids_of, self._read_list)

    async def list_for(self, user_id: int) -> list[dict]:
        """The user's chats with their last message, read marker and unread
        count, most recent activity first."""
        return orjson.loads(await self.list_json(user_id))

    async def _read_list(self, user_id: int, chat_ids: list[int]) -> list[dict]:
        if not chat_ids:
            return []
        # One script (on a cluster, one per slot, pipelined): each chat's
        # summary, the user's read marker and unread count; a chat without
        # the user's member key (a stale index entry) is left out.
        groups = by_slot(self._redis, chat_ids, keys.chat_key)
        key_groups = [
            [
                name
                for c in group
                for name in (keys.chat_summary_key(c), keys.chat_member_key(c, user_id), keys.chat_messages_key(c))
            ]
            for group in groups
        ]
        values = await run_per_group(self._redis, self._scripts.list_chats, key_groups)
        chats = []
        for summary, marker, unread in zip(values[::3], values[1::3], values[2::3]):
            chat = _in_order(orjson.loads(summary))
            chat["last_read_id"], chat["unread_count"] = int(marker), unread
            chats.append(chat)
        chats.sort(key=activity_order, reverse=True)
        return chats

    async def ids_of(self, user_id: int) -> list[int]:
        """The chats in the user's index (a superset of those they are in)."""
        return [int(c) for c in await self._redis.smembers(keys.user_chats_key(user_id))]

    async def positions(self, user_id: int, chat_ids: list[int]) -> dict[int, tuple[int, str]]:
        """Chat id -> (seq, epoch) of those chats the user is a member of, each
        read in one step with the membership (one MGET, or one per slot)."""
        if not chat_ids:
            return {}
        names = []
        for chat_id in chat_ids:
            names += [keys.chat_summary_key(chat_id), keys.chat_member_key(chat_id, user_id)]
        values = await mget(self._redis, names)
        positions = {}
        for chat_id, summary, member in zip(chat_ids, values[::2], values[1::2]):
            if summary is not None and member is not None:
                parsed = orjson.loads(summary)
                positions[chat_id] = (parsed.get("seq", 0), parsed.get("epoch", ""))
        return positions

    async def mark_read(self, user_id: int, chat_id: int, message_id: int) -> tuple[int, int]:
        """Moves the user's read marker in the chat forward to `message_id`
        (an older id changes nothing); (marker, unread count). Raises
        NotFound, Forbidden, BeyondNewest (past the newest message id)."""
        try:
            marker, unread = await self._scripts.run_chat(
                "mark_read", chat_id, user_id, message_id, keys.user_events_channel(user_id), member_id=user_id
            )
        finally:
            self._cache.user_changed(user_id)
        return marker, unread

    async def rename(self, user_id: int, chat_id: int, title: str) -> None:
        creator_id = await self._redis.hget(keys.chat_key(chat_id), "creator_id")
        if creator_id is not None:  # its index first: it must never lack the chat's real title
            await self._scripts.run("created_index", keys.created_index_keys(creator_id), ["rename", chat_id, title])
        try:
            await self._scripts.run_chat("rename_chat", chat_id, user_id, title, event_body(title=title))
        finally:
            self._cache.chat_changed(chat_id, history=False)

    async def members(self, user_id: int, chat_id: int) -> tuple[int, list[int]]:
        """(owner id, member ids in join order), for a member of the chat."""
        owner_id, member_ids = await self._scripts.run_chat("list_members", chat_id, user_id)
        return int(owner_id), [int(m) for m in member_ids]

    async def add_member(self, user_id: int, chat_id: int, new_member_id: int | None) -> None:
        """Any member adds another user (None: no such user); raises NotFound, Forbidden, Conflict."""
        try:
            await self._add_member(user_id, chat_id, new_member_id)
        finally:
            self._cache.chat_changed(chat_id, history=False)
            if new_member_id is not None:
                self._cache.user_changed(new_member_id)

    async def _add_member(self, user_id: int, chat_id: int, new_member_id: int | None) -> None:
        indexed = 0
        accepted = False
        if new_member_id is not None:
            accepted = await self._accepts_adds(new_member_id, user_id)
            indexed = await self._redis.sadd(keys.user_chats_key(new_member_id), chat_id)
        try:
            await self._scripts.run_chat(
                "add_member",
                chat_id,
                user_id,
                new_member_id or 0,
                "0" if new_member_id is None else "1",
                keys.user_events_channel(new_member_id or 0),
                "1" if accepted else "0",
                member_id=new_member_id or 0,
            )
        except (NotFound, Forbidden):
            if indexed:  # added for nothing (when it was there already, it stays)
                await self._unindex(new_member_id, chat_id)
            raise
        # Again after the script: a leave racing with this add may have just
        # taken the entry out. (Waited for, with --redis-wait-replicas: the
        # index must not lack the chat after a failover.)
        await self._scripts.write("SADD", keys.user_chats_key(new_member_id), chat_id)
        await self._undo_if_deleted(new_member_id, chat_id)

    async def _accepts_adds(self, user_id: int, adder_id: int) -> bool:
        """Whether the user lets `adder_id` add them to chats: their `allow_adds`
        is "anyone" (or unset), or the two share a chat."""
        if await self._redis.hget(keys.user_key(user_id), "allow_adds") != ALLOW_ADDS_CONTACTS:
            return True
        return await self._share_a_chat(adder_id, user_id)

    async def _share_a_chat(self, first: int, second: int) -> bool:
        """Whether both users are members of one chat.

        Each user's index is in its own slot (no SINTER on a cluster): the
        first's chat ids are looked up in the second's index, one command,
        and each chat found there is confirmed against its member set (the
        indexes are supersets), until one is.
        """
        chat_ids = await self.ids_of(first)
        if not chat_ids:
            return False
        found = await self._redis.smismember(keys.user_chats_key(second), chat_ids)
        for chat_id in (c for c, indexed in zip(chat_ids, found) if indexed):
            scores = await self._redis.zmscore(keys.chat_members_key(chat_id), [first, second])
            if None not in scores:
                return True
        return False

    async def remove_member(self, user_id: int, chat_id: int, member_id: int) -> None:
        """The owner removes a member, or a member (user_id == member_id) leaves."""
        try:
            await self._scripts.run_chat(
                "remove_member", chat_id, user_id, member_id, keys.user_events_channel(member_id), member_id=member_id
            )
            await self._unindex(member_id, chat_id)
        finally:
            self._cache.chat_changed(chat_id, history=False, removed=member_id)
            self._cache.user_changed(member_id)

    async def typing(self, user_id: int, chat_id: int) -> bool:
        """Tells the chat's other members the user is typing, unless they were
        told within TYPING_HOLD_MS; True if it went out. Raises NotFound, Forbidden."""
        (sent,) = await self._scripts.run_chat(
            "typing", chat_id, user_id, TYPING_HOLD_MS, extra_key=keys.chat_typing_key(chat_id, user_id)
        )
        return bool(sent)

    async def leave_all(self, user_id: int) -> None:
        """Takes the user out of every chat they are in (for account deletion)."""
        # However many chats: each one is a step with its own deadline.
        async with deadline.excluded():
            async with deadline.step():
                chat_ids = await self._redis.smembers(keys.user_chats_key(user_id))
            for chat_id in chat_ids:
                async with deadline.step():
                    try:
                        await self.remove_member(user_id, int(chat_id), user_id)
                    except (NotFound, Forbidden):
                        await self._unindex(user_id, int(chat_id))

    async def _unindex(self, user_id: int, chat_id: int) -> None:
        """Takes a chat out of the user's index, unless they are (again) a member.

        Checked after the removal: an add that lands in between re-adds the
        entry itself after its script, and one that landed before is seen here.
        A chat left no longer counts as created by them (its title is free).
        """
        await self._scripts.run("created_index", keys.created_index_keys(user_id), ["forget", chat_id])
        await self._redis.srem(keys.user_chats_key(user_id), chat_id)
        if await self._redis.zscore(keys.chat_members_key(chat_id), user_id) is not None:
            await self._scripts.write("SADD", keys.user_chats_key(user_id), chat_id)

    async def _undo_if_deleted(self, user_id: int, chat_id: int) -> None:
        """If the account's deletion began while the user was put into this chat,
        takes them out again (its leave_all may already have run) and raises NotFound."""
        if not await is_live(self._redis, user_id):
            await self.remove_member(user_id, chat_id, user_id)
            raise NotFound("user not found")

    async def _has_created(self, user_id: int, title: str) -> bool:
        """Whether a chat the user created, and is still in, has this title
        (chats others added them to do not count: nobody can squat their titles)."""
        listed = await self._redis.hget(keys.user_created_titles_key(user_id), title)
        if not listed:
            return False
        groups = by_slot(self._redis, listed.split("\n"), keys.chat_key)
        key_groups = [[name for c in group for name in (keys.chat_key(c), keys.chat_members_key(c))] for group in groups]
        return bool(await run_per_group(self._redis, self._scripts.has_title, key_groups, [title, user_id]))


SUMMARY_FIELDS = (
    "id", "title", "owner_id", "created_at", "last_message", "last_message_id", "last_message_time", "sender_id",
    "last_message_edited_at", "seq", "epoch",
)  # fmt: skip
# Fields newer than some stored summaries: null until the chat's next event rewrites it.
NULL_IF_MISSING = frozenset({"last_message_edited_at"})


def _in_order(summary: dict) -> dict:
    """The fields in one fixed order (Lua's JSON encoder picks its own)."""
    return {field: summary.get(field) if field in NULL_IF_MISSING else summary[field] for field in SUMMARY_FIELDS}
