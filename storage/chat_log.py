"""Reading a chat's log: the numbered events after a given seq.

Written by the chat scripts themselves (chat_prelude.lua's `emit`), in the
same step as each change; read here by clients catching up (members only)
and by server processes that lost part of a chat's live stream.
"""

from typing import NamedTuple

from . import keys
from .errors import Gone

PAGE_MAX_EVENTS = 1000


class LogPage(NamedTuple):
    seq: int  # the chat's newest seq when this was read
    epoch: str
    events: list[str]  # event JSON texts, oldest first


class ChatLog:
    def __init__(self, redis, scripts):
        self._redis = redis
        self._scripts = scripts

    async def read(self, user_id: int, chat_id: int, since: int, limit: int, epoch: str | None = None) -> LogPage:
        """The events after `since` for a member; raises NotFound, Forbidden,
        or Gone when the log cannot serve it (another epoch, trimmed)."""
        seq, current, *events = await self._scripts.run_chat(
            "read_events", chat_id, user_id, since, limit, epoch or ""
        )
        return LogPage(int(seq), current, events)

    async def position(self, chat_id: int) -> tuple[int, str]:
        """The chat's newest seq and its log's epoch (0 and '' for a chat that is gone)."""
        seq, epoch = await self._redis.hmget(keys.chat_key(chat_id), "log_seq", "log_epoch")
        return int(seq or 0), epoch or ""

    async def read_unchecked(self, chat_id: int, since: int, epoch: str | None = None) -> LogPage:
        """The same for this process itself (no membership check), at most a
        page of PAGE_MAX_EVENTS; raises Gone. A chat that is gone reads as
        an empty log at seq 0."""
        key_names = [keys.chat_key(chat_id), keys.chat_messages_key(chat_id),
                     keys.chat_log_key(chat_id), keys.chat_log_prior_key(chat_id)]  # fmt: skip
        status, *rest = await self._scripts.run("read_log", key_names, [chat_id, since, PAGE_MAX_EVENTS, epoch or ""])
        if status != "ok":
            raise Gone(rest[0])
        seq, current, *events = rest
        return LogPage(int(seq), current, events)
