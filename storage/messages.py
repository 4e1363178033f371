"""Messages: one sorted set per chat, member = message JSON, score = id.

The stored JSON is exactly what the API returns, so a page of history goes
from Redis to the client without being decoded.
"""

import hashlib
from typing import NamedTuple

from . import deadline, keys
from .fair_share import Gate
from .records import json_string, message_json_tail, utc_now_iso


class Sent(NamedTuple):
    message_id: int
    replayed: bool  # an earlier send with the same idempotency key


class Page(NamedTuple):
    # Message JSON texts, oldest first: str, or bytes as Redis sent them
    # (a page not from the read cache: see MessageStore._read).
    messages: list[str] | list[bytes]
    # When --history-page-max-bytes cut the page short of its limit: the id
    # of the last message taken (the oldest, paging back; the newest, paging
    # forward), where the next page continues. None: not cut.
    resume_id: int | None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class MessageStore:
    def __init__(
        self, scripts, cache, *, idempotency_ttl_secs: int, page_max_bytes: int = 1024 * 1024, reads_in_flight: int = 2
    ):
        self._scripts = scripts
        self.reads = Gate(size=reads_in_flight)  # history read from Redis (see fair_share.Gate)
        self._cache = cache  # storage.read_cache: told of every change made here
        self._idempotency_ttl_secs = idempotency_ttl_secs
        self._page_max_bytes = page_max_bytes

    async def send(self, user_id: int, chat_id: int, content: str, idempotency_key: str | None = None) -> Sent:
        """Stores a message from a member; its id is per chat and increasing.

        With an idempotency key, a send this user already made to this chat
        with the same key is not stored again: its first id comes back, with
        `replayed` set; the same key with other content raises KeyReused.
        """
        args = [user_id, message_json_tail(content), chat_id, utc_now_iso()]
        record = None
        if idempotency_key is not None:
            record = keys.send_idempotency_key(chat_id, user_id, _digest(idempotency_key))
            args += [_digest(content), self._idempotency_ttl_secs]
        # The sender's member key (KEYS[5]): sending moves their read marker.
        try:
            message_id, replayed, *new = await self._scripts.run_chat(
                "send_message", chat_id, *args, member_id=user_id, extra_key=record
            )
        except BaseException:
            self._cache.user_changed(user_id)  # it may have been stored all the same
            self._cache.chat_changed(chat_id, history=True)
            raise
        if new:
            seq, time = new
            message = {"id": message_id, "sender_id": user_id, "time": time, "content": content}
            self._cache.message_sent(chat_id, seq, message)
        return Sent(message_id, bool(replayed))

    async def history(self, user_id: int, chat_id: int, **cursors) -> list[str]:
        """The message JSON texts of `page` (same arguments), oldest first."""
        messages = (await self.page(user_id, chat_id, **cursors)).messages
        return [m.decode() if isinstance(m, bytes) else m for m in messages]

    async def page(
        self,
        user_id: int,
        chat_id: int,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
    ) -> Page:
        """A page of history for a member, at most `limit` messages and about
        --history-page-max-bytes (a cut page says where to continue).

        No cursor or only `before`: the newest `limit` messages below it.
        `after` (with or without `before`): the oldest `limit` above it.
        """
        if before is None and after is None:
            def read_newest(count: int):
                # Bytes unless the read cache may keep the page (it holds str).
                raw = count > self._cache.page_messages
                return self._read(user_id, chat_id, "-inf", "+inf", count, newest=True, raw=raw)

            newest, resume_id = await self._cache.newest_page(chat_id, user_id, limit, read_newest)
            return Page(newest[::-1], resume_id or None)
        low = f"({after}" if after is not None else "-inf"
        high = f"({before}" if before is not None else "+inf"
        newest = after is None
        messages, resume_id = await self._read(user_id, chat_id, low, high, limit, newest=newest, raw=True)
        return Page(messages[::-1] if newest else messages, resume_id or None)

    async def _read(
        self, user_id: int, chat_id: int, low: str, high: str, limit: int, *, newest: bool, raw: bool = False
    ) -> tuple[list[str] | list[bytes], int]:
        """Messages with ids in (low, high) (ZRANGEBYSCORE syntax) for a member:
        the newest `limit` of them, newest first, or the oldest, oldest first;
        and the id of the last one taken if the byte bound cut them short, else 0.
        `raw`: the texts as bytes, undecoded (a page of up to 1 MB costs a
        decode here and an encode on the way out otherwise; profiled: about
        half of such a request's CPU)."""
        async with self.reads.turn((deadline.remaining() or 0) / 2):
            page, resume_id = await self._scripts.run_chat(
                "read_history", chat_id, user_id, low, high, limit, "1" if newest else "0", self._page_max_bytes,
                raw=raw,
            )
        return page, resume_id

    async def get(self, user_id: int, chat_id: int, message_id: int) -> str:
        """One message's JSON text, as history shows it, for a member."""
        (message,) = await self._scripts.run_chat("read_message", chat_id, user_id, message_id)
        return message

    async def edit(self, user_id: int, chat_id: int, message_id: int, content: str) -> None:
        """Replaces the content of one of the user's own messages; it gains `edited_at`."""
        try:
            await self._scripts.run_chat(
                "edit_message", chat_id, user_id, message_id, json_string(content), utc_now_iso()
            )
        finally:
            self._cache.chat_changed(chat_id, history=True)

    async def delete(self, user_id: int, chat_id: int, message_id: int) -> None:
        """Deletes one of the user's own messages."""
        try:
            await self._scripts.run_chat("delete_message", chat_id, user_id, message_id)
        finally:
            self._cache.chat_changed(chat_id, history=True)
