"""The Lua scripts, registered once per client, and how their replies are read.

Every chat script starts with `lua/chat_prelude.lua` (the chat exists, the
actor is a member) and answers `{status, ...}`: 'ok' or the name of an error.
"""

import functools
from pathlib import Path

import redis.exceptions
from redis.client import NEVER_DECODE

from . import keys
from .errors import BeyondNewest, Conflict, Forbidden, Gone, KeyReused, NotFound
from .replication import ReplicaWait

_LUA_DIR = Path(__file__).with_name("lua")
# Each script and the files it is made of, in order. A chat script starts
# with `chat_prelude` (the chat exists, the actor is a member, how events
# are logged and published).
_SCRIPTS = {
    "send_message": ("chat_prelude", "send_message"),
    "read_history": ("chat_prelude", "read_history"),
    "mark_read": ("chat_prelude", "mark_read"),
    "read_events": ("chat_prelude", "log_reader", "read_events"),
    "delete_message": ("chat_prelude", "delete_message"),
    "read_message": ("chat_prelude", "read_message"),
    "edit_message": ("chat_prelude", "edit_message"),
    "rename_chat": ("chat_prelude", "rename_chat"),
    "list_members": ("chat_prelude", "list_members"),
    "add_member": ("chat_prelude", "add_member"),
    "remove_member": ("chat_prelude", "remove_member"),
    "typing": ("chat_prelude", "typing"),
    "read_log": ("log_reader", "read_log"),
    "create_user": ("create_user",),
    "create_chat": ("create_chat",),
    "upgrade_chat": ("upgrade_chat",),
    "upgrade_markers": ("upgrade_markers",),
    "list_chats": ("list_chats",),
    "has_title": ("has_title",),
    "created_index": ("created_index",),
    "end_sessions": ("end_sessions",),
    "claim_name": ("claim_name",),
    "release_name": ("release_name",),
    "create_session": ("create_session",),
    "touch_session": ("touch_session",),
    "set_password": ("set_password",),
    "update_user": ("update_user",),
    "rate_window": ("rate_window",),
    "rate_count": ("rate_count",),
    "rate_bucket": ("rate_bucket",),
    "presence_arrive": ("presence_arrive",),
    "presence_depart": ("presence_depart",),
    "claim_socket": ("claim_socket",),
}
# Scripts whose writes the API acknowledges: with --redis-wait-replicas N,
# each waits for N replicas (storage.replication). The others either only
# read, or write what may be lost in a failover without lying to anyone:
# rate-limit counters, presence, socket counts, typing notices, a session's
# idle renewal (touch_session), and the migrations' steps at start.
REPLICATED = frozenset({
    "send_message", "edit_message", "delete_message", "mark_read", "rename_chat", "add_member", "remove_member",
    "create_chat", "created_index", "create_user", "claim_name", "release_name", "update_user", "set_password",
    "create_session", "end_sessions",
})  # fmt: skip
_STATUS_ERRORS = {
    "not_found": NotFound, "forbidden": Forbidden, "conflict": Conflict, "key_reused": KeyReused, "gone": Gone,
    "beyond_newest": BeyondNewest,
}  # fmt: skip


def _source(name: str) -> str:
    return (_LUA_DIR / f"{name}.lua").read_text()


class Scripts:
    """The registered scripts of one Redis client, one attribute per script."""

    def __init__(self, redis, *, chat_log_events: int = 10_000, replicas: ReplicaWait | None = None):
        """`replicas`: how acknowledged writes wait for replicas (None or 0: they do not)."""
        self._redis = redis
        self.chat_log_events = chat_log_events
        self._replicas = replicas if replicas is not None and replicas.replicas > 0 else None
        # SPUBLISH on a Redis 7 cluster (see use_shard_channels), else PUBLISH.
        self.publish_command = "PUBLISH"
        for name, parts in _SCRIPTS.items():
            setattr(self, name, redis.register_script("\n".join(_source(part) for part in parts)))

    async def load(self) -> None:
        """Loads every script into Redis (on a cluster, into every master), so
        that first requests do not pay for NOSCRIPT and a reload. Optional:
        a script missing later (a restart, SCRIPT FLUSH) reloads itself."""
        for name in _SCRIPTS:
            await self._redis.script_load(getattr(self, name).script)

    async def run(self, name: str, key_names: list[str], args: list, *, raw: bool = False) -> object:
        """Runs a script by name; `raw`: its reply's strings stay bytes (not
        decoded: a page of history goes out as it came in).

        `EVALSHA` goes straight to `execute_command`: redis-py's script object
        reaches it through wrappers that cost about 6 % of a send's CPU
        (profiled). A script missing from Redis (a restart, SCRIPT FLUSH) is
        loaded (on a cluster, on every master) and run again, as redis-py does.
        """
        script = getattr(self, name)
        command = ("EVALSHA", script.sha, len(key_names), *key_names, *args)
        options = {NEVER_DECODE: True} if raw else {}
        if self._replicas is not None and name in REPLICATED:
            execute = functools.partial(self._replicas.execute, key=key_names[0])
        else:
            execute = self._redis.execute_command
        try:
            try:
                return await execute(*command, **options)
            except redis.exceptions.NoScriptError:
                await self._redis.script_load(script.script)
                return await execute(*command, **options)
        except redis.exceptions.ResponseError as exc:
            # A script's OOM arrives wrapped as a generic script error; give it
            # the class a plain command's OOM has, so callers see one kind.
            if "-OOM " in str(exc):
                raise redis.exceptions.OutOfMemoryError(str(exc)) from exc
            raise

    async def write(self, command: str, key: str, *args):
        """Runs a plain write command on `key` (its first) that the API
        acknowledges: with --redis-wait-replicas, it waits as the REPLICATED scripts."""
        if self._replicas is None:
            return await self._redis.execute_command(command, key, *args)
        return await self._replicas.execute(command, key, *args, key=key)

    async def run_chat(
        self, name: str, chat_id: int, actor_id: int, *args, member_id: int | None = None, extra_key: str | None = None,
        raw: bool = False,
    ) -> list:
        """Runs a chat script; returns what follows 'ok' or raises its error.

        `member_id`: the user whose member key (read marker) the script reads or
        writes: the one added or removed, the sender, the reader (KEYS[5]);
        `extra_key`: one more key of the chat's slot, after those.
        """
        key_names, context = self.chat_context(chat_id, member_id, extra_key)
        status, *rest = await self.run(name, key_names, [actor_id, *context, *args], raw=raw)
        if raw:
            status = status.decode()
        if status != "ok":
            raise _STATUS_ERRORS[status](rest[0].decode() if raw else rest[0])
        return rest

    def chat_context(self, chat_id: int, member_id: int | None = None, extra_key: str | None = None):
        """The keys of a chat script, and the arguments chat_prelude.lua takes
        after the actor: the chat's channel, its id, the log's length, how to publish."""
        key_names = keys.chat_keys(chat_id, member_id) + ([extra_key] if extra_key else [])
        return key_names, [keys.chat_events_channel(chat_id), chat_id, self.chat_log_events, self.publish_command]
