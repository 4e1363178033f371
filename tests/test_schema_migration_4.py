"""Upgrading schema 3 (no `created` index) to schema 4: each chat goes into
its owner's index, so the 409 of POST /api/chats still holds for chats made
before the upgrade, chats others added one to still do not count, and
running the upgrade again changes nothing."""

import pytest

from storage import keys
from storage.migrations import SCHEMA_VERSION

from .api_helpers import assert_error, chat_with, create_chat
from .test_schema_migration import SCHEMA_KEY


def as_schema_3(sync_redis, user_ids: list[int], chat_ids: list[int]) -> None:
    """Rewrites data made by this code as schema 3 left it: no `created` index
    (nor its `titles` half, schema 5),
    no `creator_id`, version 3."""
    for user_id in user_ids:
        sync_redis.delete(*keys.created_index_keys(user_id))
    for chat_id in chat_ids:
        sync_redis.hdel(keys.chat_key(chat_id), "creator_id")
    sync_redis.set(SCHEMA_KEY, "3")


@pytest.mark.gen_test(timeout=60)
async def test_upgrading_schema_3_keeps_the_title_rule(make_user, storage, sync_redis):
    alice, bob = await make_user(), await make_user()
    mine = await chat_with(alice, bob, title="standup")
    theirs = await chat_with(bob, alice, title="Family")
    left = await create_chat(alice, "left behind")
    assert (await alice.delete("/api/chats", params={"chat_id": left})).code == 200
    as_schema_3(sync_redis, [alice.user_id, bob.user_id], [mine, theirs, left])

    assert await storage.upgrade() == 3
    assert sync_redis.get(SCHEMA_KEY) == str(SCHEMA_VERSION)
    assert sync_redis.hgetall(keys.user_created_chats_key(alice.user_id)) == {str(mine): "standup"}
    assert sync_redis.hgetall(keys.user_created_chats_key(bob.user_id)) == {str(theirs): "Family"}
    assert sync_redis.hget(keys.chat_key(mine), "creator_id") == str(alice.user_id)
    assert_error(await alice.post("/api/chats", {"title": "standup"}), 409)
    assert (await alice.post("/api/chats", {"title": "Family"})).code == 201
    assert (await alice.post("/api/chats", {"title": "left behind"})).code == 201
    assert_error(await bob.post("/api/chats", {"title": "Family"}), 409)

    before = {u: sync_redis.hgetall(keys.user_created_chats_key(u)) for u in (alice.user_id, bob.user_id)}
    sync_redis.set(SCHEMA_KEY, "3")
    assert await storage.upgrade() == 3  # again: the same indexes
    assert {u: sync_redis.hgetall(keys.user_created_chats_key(u)) for u in before} == before
    # A rename by another member after the upgrade still counts for the creator.
    assert (await bob.put(f"/api/chats/{mine}", {"title": "retro"})).code == 200
    assert_error(await alice.post("/api/chats", {"title": "retro"}), 409)
