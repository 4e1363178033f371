"""The storage layer called directly, against the real redis-server."""

import asyncio
import json

import pytest

from storage import Conflict, Forbidden, NameTaken, NotFound, keys

PASSWORD = "correct horse"


async def new_user(storage, name):
    return await storage.users.register(name, f"{name}@example.org", PASSWORD)


# Users and names


@pytest.mark.gen_test
async def test_register_stores_a_readable_hash_with_bcrypt_password(storage, sync_redis):
    user_id = await new_user(storage, "Alice")
    stored = sync_redis.hgetall(keys.user_key(user_id))
    assert stored["name"] == "Alice" and stored["email"] == "Alice@example.org"
    assert stored["password"].startswith("$2b$04$") and PASSWORD not in stored["password"]
    assert sync_redis.get("name:alice") == str(user_id)
    assert await storage.users.get(user_id) == {
        "id": user_id, "name": "Alice", "email": "Alice@example.org", "allow_adds": "anyone"}


@pytest.mark.gen_test
async def test_names_are_unique_case_insensitively(storage):
    await new_user(storage, "Bob")
    with pytest.raises(NameTaken):
        await new_user(storage, "bOB")
    assert (await storage.users.find_by_name("BOB"))["name"] == "Bob"


@pytest.mark.gen_test
async def test_concurrent_registrations_of_one_name_have_one_winner(storage, sync_redis):
    results = await asyncio.gather(*(new_user(storage, "race") for _ in range(5)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1
    assert all(isinstance(r, NameTaken) for r in results if not isinstance(r, int))
    assert sync_redis.keys("user:{*}") == [keys.user_key(winners[0])]  # losers left nothing


@pytest.mark.gen_test
async def test_login(storage):
    user_id = await new_user(storage, "carol")
    assert (await storage.users.login("CAROL", PASSWORD))[0] == user_id
    assert await storage.users.login("carol", "wrong password") is None
    assert await storage.users.login("nobody", PASSWORD) is None
    assert await storage.users.login("carol", "x" * 100) is None  # bcrypt 5 would raise


@pytest.mark.gen_test
async def test_a_name_left_by_an_interrupted_deletion_can_be_claimed(storage, sync_redis):
    sync_redis.set("name:ghost", 999)  # points at no user
    user_id = await new_user(storage, "ghost")
    assert sync_redis.get("name:ghost") == str(user_id)


@pytest.mark.gen_test
async def test_rename_moves_the_name_and_frees_the_old_one(storage, sync_redis):
    user_id = await new_user(storage, "dave")
    await storage.users.update(user_id, name="David")
    assert sync_redis.get("name:dave") is None
    assert (await storage.users.find_by_name("david"))["id"] == user_id
    with pytest.raises(NotFound):
        await storage.users.find_by_name("dave")
    other = await new_user(storage, "dave")
    with pytest.raises(NameTaken):
        await storage.users.update(other, name="DAVID")


@pytest.mark.gen_test
async def test_a_name_key_whose_user_was_renamed_is_not_trusted(storage, sync_redis):
    # As if a rename stopped between writing the user and releasing the old name.
    user_id = await new_user(storage, "erin")
    sync_redis.hset(keys.user_key(user_id), "name", "erin2")
    with pytest.raises(NotFound):
        await storage.users.find_by_name("erin")
    assert await new_user(storage, "erin") != user_id


# Sessions


@pytest.mark.gen_test
async def test_sessions_expire_and_keep_only_a_digest(storage, sync_redis, settings):
    user_id = await new_user(storage, "frank")
    token = await storage.users.create_session(user_id)
    assert await storage.users.has_session(user_id, token)
    assert not await storage.users.has_session(user_id + 1, token)
    session_keys = sync_redis.keys(f"user:{{{user_id}}}:session:*")
    assert len(session_keys) == 1
    assert 0 < sync_redis.ttl(session_keys[0]) <= settings.token_ttl_secs
    dump = " ".join(session_keys + sync_redis.zrange(keys.user_sessions_key(user_id), 0, -1))
    assert token not in dump


@pytest.mark.gen_test
async def test_end_session_and_end_all(storage):
    user_id = await new_user(storage, "gina")
    first, second, third = [await storage.users.create_session(user_id) for _ in range(3)]
    await storage.users.end_session(user_id, first)
    assert not await storage.users.has_session(user_id, first)
    assert await storage.users.has_session(user_id, second)
    await storage.users.end_all_sessions(user_id)
    assert not await storage.users.has_session(user_id, second)
    assert not await storage.users.has_session(user_id, third)


# Chats and members


@pytest.mark.gen_test
async def test_create_and_list_most_recent_first(storage):
    user_id = await new_user(storage, "hank")
    old = await storage.chats.create(user_id, "old")
    new = await storage.chats.create(user_id, "new")
    assert [c["id"] for c in await storage.chats.list_for(user_id)] == [new, old]
    await asyncio.sleep(0.002)  # times have millisecond resolution; ties go to the newer chat
    await storage.messages.send(user_id, old, "bump")
    chats = await storage.chats.list_for(user_id)
    assert [c["id"] for c in chats] == [old, new]
    assert chats[0]["last_message"] == "bump" and chats[0]["sender_id"] == user_id
    assert chats[1]["last_message"] is None and chats[1]["last_message_time"] is None
    with pytest.raises(Conflict):
        await storage.chats.create(user_id, "old")


@pytest.mark.gen_test
async def test_listing_skips_index_entries_the_member_set_denies(storage, sync_redis):
    owner = await new_user(storage, "ivan")
    other = await new_user(storage, "judy")
    chat_id = await storage.chats.create(owner, "private")
    sync_redis.sadd(keys.user_chats_key(other), chat_id, 424242)  # stale or forged entries
    assert await storage.chats.list_for(other) == []


@pytest.mark.gen_test
async def test_add_member_errors_leave_no_index_entry(storage, sync_redis):
    owner = await new_user(storage, "kate")
    stranger = await new_user(storage, "leo")
    target = await new_user(storage, "mia")
    chat_id = await storage.chats.create(owner, "room")
    with pytest.raises(Forbidden):
        await storage.chats.add_member(stranger, chat_id, target)
    with pytest.raises(NotFound):
        await storage.chats.add_member(owner, 999, target)
    with pytest.raises(NotFound):
        await storage.chats.add_member(owner, chat_id, None)
    assert sync_redis.smembers(keys.user_chats_key(target)) == set()
    await storage.chats.add_member(owner, chat_id, target)
    with pytest.raises(Conflict):
        await storage.chats.add_member(owner, chat_id, target)
    assert sync_redis.smembers(keys.user_chats_key(target)) == {str(chat_id)}  # kept on conflict


@pytest.mark.gen_test
async def test_ownership_passes_to_earliest_joiner_and_last_out_deletes(storage, sync_redis):
    owner, second, third = [await new_user(storage, n) for n in ("ned", "olga", "pete")]
    chat_id = await storage.chats.create(owner, "team")
    await storage.chats.add_member(owner, chat_id, second)
    await storage.chats.add_member(second, chat_id, third)
    await storage.messages.send(third, chat_id, "hello")
    with pytest.raises(Forbidden):
        await storage.chats.remove_member(second, chat_id, third)
    await storage.chats.remove_member(owner, chat_id, owner)
    assert await storage.chats.members(second, chat_id) == (second, [second, third])
    await storage.chats.remove_member(second, chat_id, third)
    with pytest.raises(NotFound):
        await storage.chats.remove_member(second, chat_id, third)
    await storage.chats.remove_member(second, chat_id, second)
    assert sync_redis.keys("chat:*") == []
    assert sync_redis.smembers(keys.user_chats_key(second)) == set()


# Messages


@pytest.mark.gen_test
async def test_stored_message_is_the_api_json_exactly_as_sent(storage, sync_redis):
    user_id = await new_user(storage, "quinn")
    chat_id = await storage.chats.create(user_id, "quotes")
    content = '  "quoted" \\ back\nslash 😀 </script>  '
    (message_id, _) = await storage.messages.send(user_id, chat_id, content)
    (raw,) = sync_redis.zrange(keys.chat_messages_key(chat_id), 0, -1)
    message = json.loads(raw)
    assert set(message) == {"id", "sender_id", "time", "content"}
    assert (message["id"], message["sender_id"], message["content"]) == (message_id, user_id, content)


@pytest.mark.gen_test
async def test_concurrent_sends_get_distinct_increasing_ids(storage, settings):
    user_id = await new_user(storage, "rita")
    chat_id = await storage.chats.create(user_id, "busy")
    # More at once than the pool holds: they wait for connections (on a
    # cluster too), none is refused.
    assert settings.redis_max_connections < 200
    sent = await asyncio.gather(*(storage.messages.send(user_id, chat_id, f"m{i}") for i in range(200)))
    assert sorted(s.message_id for s in sent) == list(range(1, 201))
    page = await storage.messages.history(user_id, chat_id, limit=1000)
    assert [json.loads(m)["id"] for m in page] == list(range(1, 201))


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "cursor, expected",
    [
        ({}, [8, 9, 10]),
        ({"before": 5}, [2, 3, 4]),
        ({"before": 3}, [1, 2]),
        ({"after": 5}, [6, 7, 8]),
        ({"after": 9}, [10]),
        ({"after": 2, "before": 5}, [3, 4]),
        ({"after": 1, "before": 10}, [2, 3, 4]),
        ({"after": 10}, []),
    ],
)
async def test_history_paging(storage, cursor, expected):
    user_id = await new_user(storage, "sam")
    chat_id = await storage.chats.create(user_id, "paged")
    for i in range(10):
        await storage.messages.send(user_id, chat_id, f"m{i + 1}")
    page = await storage.messages.history(user_id, chat_id, limit=3, **cursor)
    assert [json.loads(m)["id"] for m in page] == expected


@pytest.mark.gen_test
async def test_delete_message_checks_sender_and_updates_summary(storage):
    author = await new_user(storage, "tina")
    other = await new_user(storage, "ugo")
    chat_id = await storage.chats.create(author, "edits")
    await storage.chats.add_member(author, chat_id, other)
    first = (await storage.messages.send(author, chat_id, "first")).message_id
    second = (await storage.messages.send(author, chat_id, "second")).message_id
    with pytest.raises(Forbidden):
        await storage.messages.delete(other, chat_id, second)
    await storage.messages.delete(author, chat_id, second)
    with pytest.raises(NotFound):
        await storage.messages.delete(author, chat_id, second)
    (summary,) = await storage.chats.list_for(other)
    assert (summary["last_message"], summary["last_message_id"]) == ("first", first)


@pytest.mark.gen_test
async def test_non_members_can_neither_read_nor_write(storage):
    owner = await new_user(storage, "vera")
    stranger = await new_user(storage, "walt")
    chat_id = await storage.chats.create(owner, "closed")
    for attempt in (
        storage.messages.send(stranger, chat_id, "hi"),
        storage.messages.history(stranger, chat_id, limit=10),
        storage.chats.rename(stranger, chat_id, "mine"),
        storage.chats.members(stranger, chat_id),
    ):
        with pytest.raises(Forbidden):
            await attempt
    with pytest.raises(NotFound):
        await storage.messages.send(owner, chat_id + 1, "hi")


# Deleting a user


@pytest.mark.gen_test
async def test_delete_user_leaves_chats_keeps_messages_frees_name(storage, sync_redis):
    gone = await new_user(storage, "xena")
    stays = await new_user(storage, "yann")
    shared = await storage.chats.create(gone, "shared")
    await storage.chats.create(gone, "alone")
    await storage.chats.add_member(gone, shared, stays)
    await storage.messages.send(gone, shared, "remember me")
    token = await storage.users.create_session(gone)
    await storage.users.delete(gone)
    assert not await storage.users.has_session(gone, token)
    assert await storage.chats.members(stays, shared) == (stays, [stays])
    (message,) = await storage.messages.history(stays, shared, limit=10)
    assert json.loads(message)["sender_id"] == gone
    assert sync_redis.keys(f"user:{{{gone}}}*") == []
    # "alone" is gone with its log; nothing was deleted in "shared", so it has no prior versions.
    left = set(keys.chat_keys(shared, member_id=stays)) - {keys.chat_log_prior_key(shared)}
    assert set(sync_redis.keys("chat:*")) == left
    assert await new_user(storage, "XENA") != gone


@pytest.mark.gen_test
async def test_the_listed_summary_keeps_text_exactly_through_lua(storage):
    user_id = await new_user(storage, "zoe")
    title = 'a/b "quoted" \\ ünï 😀'
    content = '  line\n\t"quoted" \\ a/b \x01 😀 </script>  '
    chat_id = await storage.chats.create(user_id, "first")
    await storage.chats.rename(user_id, chat_id, title)
    (message_id, _) = await storage.messages.send(user_id, chat_id, content)
    (summary,) = await storage.chats.list_for(user_id)
    assert (summary["title"], summary["last_message"], summary["last_message_id"]) == (title, content, message_id)
    assert summary["sender_id"] == user_id and summary["owner_id"] == user_id


@pytest.mark.gen_test
async def test_listed_chats_have_their_fields_in_one_order(storage):
    user_id = await new_user(storage, "ava")
    chat_id = await storage.chats.create(user_id, "ordered")
    await storage.messages.send(user_id, chat_id, "hi")
    (summary,) = await storage.chats.list_for(user_id)
    assert list(summary) == [
        "id", "title", "owner_id", "created_at", "last_message", "last_message_id", "last_message_time", "sender_id",
        "last_message_edited_at", "seq", "epoch", "last_read_id", "unread_count",
    ]  # fmt: skip
