"""Upgrading schema 2 (member keys holding "1") to schema 3 (they hold read
markers): nothing lost, everything said before the upgrade counts as read,
and running the upgrade again changes nothing, even a marker of 1 set for
real since. (The path from schema 1: test_schema_migration.py.)"""

import pytest

from storage import keys
from storage.migrations import SCHEMA_VERSION

from .api_helpers import add_member, chat_with, chats_of, create_chat, history, members_of, send
from .logclient import log_page
from .test_schema_migration import SCHEMA_KEY, snapshot

NEW_FIELDS = ("last_read_id", "unread_count")


def as_schema_2(sync_redis, chat_ids: list[int]) -> None:
    """Rewrites chats made by this code as schema 2 left them: member keys "1",
    no `read_markers` in the hash, and the version 2."""
    for chat_id in chat_ids:
        for member in sync_redis.zrange(keys.chat_members_key(chat_id), 0, -1):
            sync_redis.set(keys.chat_member_key(chat_id, member), "1")
        sync_redis.hdel(keys.chat_key(chat_id), "read_markers")
    sync_redis.set(SCHEMA_KEY, "2")


async def everything_seen(chat_ids, **clients) -> dict:
    """What each user sees: their chat list (without the new fields), and each chat's history, members and log."""
    seen = {}
    for name, client in clients.items():
        seen[name] = [{k: v for k, v in c.items() if k not in NEW_FIELDS} for c in await chats_of(client)]
    for chat_id in chat_ids:
        owner = clients["alice"]
        seen[chat_id] = (await history(owner, chat_id), await members_of(owner, chat_id), await log_page(owner, chat_id))
    return seen


async def badges(client) -> dict[int, tuple[int, int]]:
    return {c["id"]: (c["last_read_id"], c["unread_count"]) for c in await chats_of(client)}


@pytest.mark.gen_test(timeout=60)
async def test_upgrading_schema_2_marks_everything_read_and_loses_nothing(make_user, storage, sync_redis):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    talk = await chat_with(alice, bob, carol)
    for n in range(3):
        await send(alice, talk, f"a{n}")
    last = await send(bob, talk, "b3")
    assert (await bob.delete(f"/api/chats/{talk}", {"id": last})).code == 200  # the newest id is deleted
    quiet = await create_chat(alice)
    before = await everything_seen([talk, quiet], alice=alice, bob=bob, carol=carol)
    as_schema_2(sync_redis, [talk, quiet])

    assert await storage.upgrade() == 2
    assert sync_redis.get(SCHEMA_KEY) == str(SCHEMA_VERSION)
    assert await everything_seen([talk, quiet], alice=alice, bob=bob, carol=carol) == before
    for client in (alice, bob, carol):  # the deleted newest id is the marker: nothing unread
        assert (await badges(client))[talk] == (last, 0)
    assert (await badges(alice))[quiet] == (0, 0)
    assert sync_redis.hget(keys.chat_key(talk), "read_markers") == "1"

    # After the upgrade counts go on from there.
    newest = await send(alice, talk, "after")
    assert (await badges(bob))[talk] == (last, 1)
    assert (await badges(alice))[talk] == (newest, 0)


@pytest.mark.gen_test(timeout=60)
async def test_running_the_upgrade_again_changes_nothing(make_user, storage, sync_redis):
    alice, bob = await make_user(), await make_user()
    old = await chat_with(alice, bob)
    await send(alice, old, "before the upgrade")
    as_schema_2(sync_redis, [old])
    await storage.upgrade()
    # A chat of the new layout where bob's marker is a real 1: he joined after message 1.
    new = await create_chat(alice)
    await send(alice, new, "one")
    await add_member(alice, new, bob)
    await send(alice, new, "two")
    assert (await badges(bob))[new] == (1, 1)
    upgraded = snapshot(sync_redis)

    assert await storage.upgrade() == SCHEMA_VERSION  # nothing to do
    assert snapshot(sync_redis) == upgraded
    # A process that read version 2 and upgrades meanwhile (they start together).
    sync_redis.set(SCHEMA_KEY, "2")
    assert await storage.upgrade() == 2
    assert snapshot(sync_redis) == upgraded
    assert (await badges(bob))[new] == (1, 1)
