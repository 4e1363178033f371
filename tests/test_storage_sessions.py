"""Storage under conditions a cluster or an operator can create: the session
cap per user, a shorter lifetime setting, a vanished account, a counter
taken back."""

import dataclasses

import pytest

from server.app import make_storage
from storage import keys
from storage.users import MAX_SESSIONS_PER_USER

PASSWORD = "correct horse"


@pytest.mark.gen_test
async def test_past_the_cap_a_login_ends_the_oldest_sessions(storage, sync_redis):
    user_id = await storage.users.register("cap", "cap@example.org", PASSWORD)
    tokens = [await storage.users.create_session(user_id) for _ in range(MAX_SESSIONS_PER_USER + 3)]
    assert sync_redis.zcard(keys.user_sessions_key(user_id)) == MAX_SESSIONS_PER_USER
    live = [await storage.users.has_session(user_id, token, fresh=True) for token in tokens]
    assert live == [False] * 3 + [True] * MAX_SESSIONS_PER_USER


@pytest.mark.gen_test
async def test_a_shorter_lifetime_setting_does_not_hide_older_sessions(storage, redis_client, settings, sync_redis):
    user_id = await storage.users.register("ttl", "ttl@example.org", PASSWORD)
    long_lived = await storage.users.create_session(user_id)
    short = make_storage(redis_client, dataclasses.replace(settings, token_ttl_secs=10))
    await short.users.create_session(user_id)
    assert sync_redis.ttl(keys.user_sessions_key(user_id)) > 10  # the set lives as long as its longest session
    await storage.users.end_other_sessions(user_id, "no such digest")
    assert not await storage.users.has_session(user_id, long_lived, fresh=True)
    short.passwords.close()


@pytest.mark.gen_test
async def test_a_session_of_an_account_that_vanished_is_not_live(storage, sync_redis):
    user_id = await storage.users.register("gone", "gone@example.org", PASSWORD)
    token = await storage.users.create_session(user_id)
    sync_redis.delete(keys.user_key(user_id))  # as a deletion cut short after this step would leave it
    assert not await storage.users.has_session(user_id, token, fresh=True)


@pytest.mark.gen_test
async def test_a_counter_taken_back_never_overwrites_what_it_handed_out(storage, sync_redis):
    # As a cluster failover can leave it: the counter behind the surviving objects.
    first = await storage.users.register("first", "f@example.org", PASSWORD)
    chat = await storage.chats.create(first, "kept")
    sync_redis.set(keys.USER_ID_SEQ, 0)
    sync_redis.set(keys.CHAT_ID_SEQ, 0)
    second = await storage.users.register("second", "s@example.org", PASSWORD)
    other_chat = await storage.chats.create(second, "new")
    assert (second, other_chat) == (first + 1, chat + 1)
    assert (await storage.users.get(first))["name"] == "first"
    assert [c["title"] for c in await storage.chats.list_for(first)] == ["kept"]
    assert [c["title"] for c in await storage.chats.list_for(second)] == ["new"]
