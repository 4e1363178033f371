"""The Lua scripts, registered once per client, and how their replies are read.

Every chat script starts with `lua/chat_prelude.lua` (the chat exists, the
actor is a member) and answers `{status, ...}`: 'ok' or the name of an error.
"""

from pathlib import Path

import redis.exceptions

from . import keys
from .errors import Conflict, Forbidden, KeyReused, NotFound

_LUA_DIR = Path(__file__).with_name("lua")
_CHAT_SCRIPTS = (
    "send_message",
    "read_history",
    "delete_message",
    "rename_chat",
    "list_members",
    "add_member",
    "remove_member",
)
_PLAIN_SCRIPTS = (
    "create_user",
    "create_chat",
    "end_sessions",
    "claim_name",
    "release_name",
    "create_session",
    "touch_session",
    "set_password",
    "update_user",
    "rate_window",
    "rate_count",
    "rate_bucket",
)
_STATUS_ERRORS = {"not_found": NotFound, "forbidden": Forbidden, "conflict": Conflict, "key_reused": KeyReused}


def _source(name: str) -> str:
    return (_LUA_DIR / f"{name}.lua").read_text()


class Scripts:
    """The registered scripts of one Redis client, one attribute per script."""

    def __init__(self, redis):
        self._redis = redis
        prelude = _source("chat_prelude")
        for name in _CHAT_SCRIPTS:
            setattr(self, name, redis.register_script(prelude + _source(name)))
        for name in _PLAIN_SCRIPTS:
            setattr(self, name, redis.register_script(_source(name)))

    async def load(self) -> None:
        """Loads every script into Redis (on a cluster, into every master), so
        that first requests do not pay for NOSCRIPT and a reload. Optional:
        a script missing later (a restart, SCRIPT FLUSH) reloads itself."""
        for name in (*_CHAT_SCRIPTS, *_PLAIN_SCRIPTS):
            await self._redis.script_load(getattr(self, name).script)

    async def run(self, name: str, key_names: list[str], args: list) -> object:
        """Runs a script by name."""
        try:
            return await getattr(self, name)(keys=key_names, args=args)
        except redis.exceptions.ResponseError as exc:
            # A script's OOM arrives wrapped as a generic script error; give it
            # the class a plain command's OOM has, so callers see one kind.
            if "-OOM " in str(exc):
                raise redis.exceptions.OutOfMemoryError(str(exc)) from exc
            raise

    async def run_chat(
        self, name: str, chat_id: int, actor_id: int, *args, member_id: int | None = None, extra_key: str | None = None
    ) -> list:
        """Runs a chat script; returns what follows 'ok' or raises its error.

        `member_id`: the user a script adds or removes (their member key is KEYS[5]);
        `extra_key`: one more key of the chat's slot, after those.
        """
        key_names = keys.chat_keys(chat_id, member_id) + ([extra_key] if extra_key else [])
        status, *rest = await self.run(name, key_names, [actor_id, *args])
        if status != "ok":
            raise _STATUS_ERRORS[status](rest[0])
        return rest
