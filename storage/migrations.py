"""The layout version of the data in Redis, and the steps that bring older data forward.

`schema:version` holds the version the data is in (absent: 1, the layout
before chat logs; 2: member keys held "1"; 3: they hold read markers; 4:
each user's `created` index of the chats they created, and `creator_id` in
each chat; 5: beside it, `titles`, the same index by title). Every server
process runs `upgrade` at start; each step
is idempotent, so processes starting together, or a step cut short and run
again, leave the data as one run would. The version is written once a step
has finished.
"""

import logging

from . import keys
from .records import new_epoch

log = logging.getLogger("chat.migrations")

SCHEMA_VERSION = 5
SCAN_BATCH = 500


async def upgrade(redis_client, scripts) -> int:
    """Brings the data to SCHEMA_VERSION; returns the version it was in."""
    found = int(await redis_client.get(keys.SCHEMA_VERSION_KEY) or 1)
    if found > SCHEMA_VERSION:
        raise RuntimeError(f"the data in Redis is at schema {found}, newer than this code ({SCHEMA_VERSION})")
    if found < 2:
        count = await _add_chat_logs(redis_client, scripts)
        log.info("schema 1 -> 2: gave %d chats an empty event log", count)
    if found < 3:
        count = await _markers(redis_client, scripts)
        log.info("schema 2 -> 3: gave the members of %d chats read markers", count)
    if found < 4:
        count = await _created_indexes(redis_client, scripts)
        log.info("schema 3 -> 4: put %d chats in their owners' created index", count)
    if found < 5:
        count = await _title_indexes(redis_client, scripts)
        log.info("schema 4 -> 5: indexed by title the chats %d users created", count)
    if found < SCHEMA_VERSION:
        await redis_client.set(keys.SCHEMA_VERSION_KEY, SCHEMA_VERSION)
    return found


async def _add_chat_logs(redis_client, scripts) -> int:
    """1 -> 2: every chat gets `log_seq` 0 and an epoch, and its summary `seq` and `epoch`."""
    upgraded = 0
    async for key in _scan(redis_client, keys.chat_key("*")):
        chat_id = keys.id_of_channel(key)  # chat:{C}: the id inside the hash tag
        upgraded += await scripts.run(
            "upgrade_chat", [keys.chat_key(chat_id), keys.chat_summary_key(chat_id)], [new_epoch()]
        )
    return upgraded


async def _markers(redis_client, scripts) -> int:
    """2 -> 3: every member key holding "1" gets the chat's newest message id as
    its read marker (everything said before the upgrade counts as read)."""
    upgraded = 0
    async for key in _scan(redis_client, keys.chat_key("*")):
        chat_id = keys.id_of_channel(key)
        member_ids = await redis_client.zrange(keys.chat_members_key(chat_id), 0, -1)
        member_keys = [keys.chat_member_key(chat_id, member_id) for member_id in member_ids]
        upgraded += await scripts.run("upgrade_markers", [keys.chat_key(chat_id), *member_keys], [])
    return upgraded


async def _created_indexes(redis_client, scripts) -> int:
    """3 -> 4: each chat gets `creator_id` and goes, with its title, into its
    creator's `created` index (the title check of a new chat reads only
    that). Who created a chat was not recorded: its owner stands in (the
    creator, unless they left, and then it no longer counts for them anyway).
    Running it twice changes nothing."""
    upgraded = 0
    async for key in _scan(redis_client, keys.chat_key("*")):
        chat_id = keys.id_of_channel(key)
        owner_id, title = await redis_client.hmget(keys.chat_key(chat_id), "owner_id", "title")
        if owner_id is None:
            continue
        await redis_client.hsetnx(keys.chat_key(chat_id), "creator_id", owner_id)
        creator_id = await redis_client.hget(keys.chat_key(chat_id), "creator_id")
        if await redis_client.zscore(keys.chat_members_key(chat_id), creator_id) is not None:
            upgraded += await redis_client.hsetnx(keys.user_created_chats_key(creator_id), chat_id, title)
    return upgraded


async def _title_indexes(redis_client, scripts) -> int:
    """4 -> 5: each user's `titles` index made from their `created` index
    (made again from scratch: running it twice changes nothing)."""
    upgraded = 0
    async for key in _scan(redis_client, keys.user_created_chats_key("*")):
        user_id = keys.id_of_channel(key)  # user:{U}:created: the id inside the hash tag
        upgraded += await scripts.run("created_index", keys.created_index_keys(user_id), ["rebuild"])
    return upgraded


async def _scan(redis_client, pattern: str):
    """Every key of the pattern that is a hash (on a cluster, redis-py scans every master)."""
    async for key in redis_client.scan_iter(match=pattern, count=SCAN_BATCH, _type="hash"):
        yield key
