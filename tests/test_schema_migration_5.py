"""Upgrading schema 4 (the `created` index alone) to schema 5 (beside it,
`titles`, the same index by title): the 409 of POST /api/chats holds for the
same titles as before, renamed and left chats included, and running the
upgrade again changes nothing."""

import pytest

from storage import keys
from storage.migrations import SCHEMA_VERSION

from .api_helpers import assert_error, chat_with, create_chat
from .test_schema_migration import SCHEMA_KEY


@pytest.mark.gen_test(timeout=60)
async def test_upgrading_schema_4_keeps_the_title_rule(make_user, storage, sync_redis):
    alice, bob = await make_user(), await make_user()
    standup = await chat_with(alice, bob, title="standup")
    assert (await bob.put(f"/api/chats/{standup}", {"title": "retro"})).code == 200
    await create_chat(alice, "standup")  # one chat's old title, another's current one: both listed
    left = await create_chat(alice, "left behind")
    assert (await alice.delete("/api/chats", params={"chat_id": left})).code == 200
    theirs = await chat_with(bob, alice, title="Family")
    built = {u: sync_redis.hgetall(keys.user_created_titles_key(u)) for u in (alice.user_id, bob.user_id)}
    for user_id in built:  # schema 4 had no titles index
        sync_redis.delete(keys.user_created_titles_key(user_id))
    sync_redis.set(SCHEMA_KEY, "4")

    assert await storage.upgrade() == 4
    assert sync_redis.get(SCHEMA_KEY) == str(SCHEMA_VERSION)
    after = {u: sync_redis.hgetall(keys.user_created_titles_key(u)) for u in built}
    assert after == built  # the same as the code writes as it goes
    assert set(after[alice.user_id]) == {"standup", "retro"} and after[bob.user_id] == {"Family": str(theirs)}
    for title in ("retro", "standup"):
        assert_error(await alice.post("/api/chats", {"title": title}), 409)
    for title in ("left behind", "Family"):
        assert (await alice.post("/api/chats", {"title": title})).code == 201
    assert_error(await bob.post("/api/chats", {"title": "Family"}), 409)

    before = {u: sync_redis.hgetall(keys.user_created_titles_key(u)) for u in built}
    sync_redis.set(SCHEMA_KEY, "4")
    assert await storage.upgrade() == 4  # again: the same index
    assert {u: sync_redis.hgetall(keys.user_created_titles_key(u)) for u in built} == before
