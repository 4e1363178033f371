"""Operations that race with each other, and deletions that race with everything."""

import asyncio
import json

import pytest

from storage import NameTaken, NotFound, keys

PASSWORD = "correct horse"


async def new_user(storage, name):
    return await storage.users.register(name, f"{name}@example.org", PASSWORD)


def mark_deleting(sync_redis, user_id):
    """The first step of an account deletion, as if the rest were still running."""
    sync_redis.hset(keys.user_key(user_id), "deleted_at", "2026-11-23T00:00:00.000Z")


@pytest.mark.gen_test
async def test_an_account_being_deleted_is_gone_for_every_check(storage, sync_redis):
    user_id = await new_user(storage, "ada")
    mark_deleting(sync_redis, user_id)
    with pytest.raises(NotFound):
        await storage.users.create_session(user_id)  # a login that lost the race
    assert await storage.users.login("ada", PASSWORD) is None
    assert not await storage.users.exists(user_id)
    assert await storage.users.names([user_id]) == {}
    with pytest.raises(NotFound):
        await storage.users.update(user_id, email="back@example.org")
    assert sync_redis.hget(keys.user_key(user_id), "email") == "ada@example.org"
    assert await new_user(storage, "ADA") != user_id  # the name is free again


@pytest.mark.gen_test
async def test_adding_someone_being_deleted_undoes_itself(storage, sync_redis):
    owner, doomed = await new_user(storage, "bea"), await new_user(storage, "cid")
    chat_id = await storage.chats.create(owner, "room")
    mark_deleting(sync_redis, doomed)
    with pytest.raises(NotFound):
        await storage.chats.add_member(owner, chat_id, doomed)
    assert await storage.chats.members(owner, chat_id) == (owner, [owner])
    assert sync_redis.smembers(keys.user_chats_key(doomed)) == set()


@pytest.mark.gen_test
async def test_a_chat_created_by_an_account_being_deleted_is_undone(storage, sync_redis):
    doomed = await new_user(storage, "dov")
    mark_deleting(sync_redis, doomed)
    with pytest.raises(NotFound):
        await storage.chats.create(doomed, "orphan")
    assert sync_redis.keys("chat:*") == []


@pytest.mark.gen_test
async def test_leaving_and_being_readded_at_once_keeps_the_index_in_step(storage, sync_redis):
    owner, member = await new_user(storage, "eli"), await new_user(storage, "fay")
    chat_id = await storage.chats.create(owner, "door")
    await storage.chats.add_member(owner, chat_id, member)
    for _ in range(60):
        await asyncio.gather(
            storage.chats.remove_member(member, chat_id, member),
            storage.chats.add_member(owner, chat_id, member),
            return_exceptions=True,
        )
        is_member = sync_redis.zscore(keys.chat_members_key(chat_id), member) is not None
        listed = [c["id"] for c in await storage.chats.list_for(member)]
        assert listed == ([chat_id] if is_member else [])  # never a chat they are in missing
        if not is_member:
            await storage.chats.add_member(owner, chat_id, member)


@pytest.mark.gen_test
async def test_concurrent_renames_to_one_name_have_one_winner(storage):
    users = [await new_user(storage, f"gus{i}") for i in range(5)]
    for round_ in range(5):
        wanted = f"prize{round_}"
        results = await asyncio.gather(
            *(storage.users.update(u, name=wanted) for u in users), return_exceptions=True
        )
        assert sum(r is None for r in results) == 1, results
        assert all(isinstance(r, NameTaken) for r in results if r is not None)
        holders = [u for u in users if (await storage.users.get(u))["name"] == wanted]
        assert len(holders) == 1
        assert (await storage.users.find_by_name(wanted))["id"] == holders[0]


@pytest.mark.gen_test
async def test_message_times_never_go_back_as_ids_go_up(storage, sync_redis):
    user_id = await new_user(storage, "hal")
    chat_id = await storage.chats.create(user_id, "clock")
    # A message stamped by a server whose clock runs ahead.
    sync_redis.hset(keys.chat_key(chat_id), "last_message_time", "2999-01-01T00:00:00.000Z")
    await asyncio.gather(*(storage.messages.send(user_id, chat_id, f"m{i}") for i in range(50)))
    page = await storage.messages.history(user_id, chat_id, limit=100)
    times = [json.loads(m)["time"] for m in page]
    assert times == sorted(times) and times[0] == "2999-01-01T00:00:00.000Z"


@pytest.mark.gen_test
async def test_sessions_of_an_account_marked_deleted_are_dead_at_once(storage, sync_redis):
    # As if the deletion stopped right after marking, before ending the sessions.
    user_id = await new_user(storage, "ivy")
    token = await storage.users.create_session(user_id)
    mark_deleting(sync_redis, user_id)
    assert not await storage.users.has_session(user_id, token)
