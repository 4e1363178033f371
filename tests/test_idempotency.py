"""Idempotency-Key on sends: a retry returns the first result and stores nothing new."""

import asyncio

import pytest

from storage import keys

from .api_helpers import assert_error, assert_ok, chat_with, history
from .wsclient import answer, open_socket


async def send_with_key(client, chat_id, content, key):
    return await client.post(f"/api/chats/{chat_id}", {"content": content}, headers={"Idempotency-Key": key})


@pytest.mark.gen_test
async def test_a_retry_with_the_same_key_returns_the_first_result(make_user):
    alice = await make_user()
    chat_id = await chat_with(alice)
    first = await send_with_key(alice, chat_id, "hello once", "key-1")
    retry = await send_with_key(alice, chat_id, "hello once", "key-1")
    assert assert_ok(first, 201) == assert_ok(retry, 201)
    assert "Idempotent-Replayed" not in first.headers
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert [m["content"] for m in await history(alice, chat_id)] == ["hello once"]


@pytest.mark.gen_test
async def test_concurrent_retries_store_one_message(make_user):
    alice = await make_user()
    chat_id = await chat_with(alice)
    answers = await asyncio.gather(*(send_with_key(alice, chat_id, "same", "burst") for _ in range(20)))
    assert {assert_ok(a, 201)["id"] for a in answers} == {1}
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19
    assert len(await history(alice, chat_id)) == 1


@pytest.mark.gen_test
async def test_the_same_key_with_other_content_is_refused(make_user):
    alice = await make_user()
    chat_id = await chat_with(alice)
    assert_ok(await send_with_key(alice, chat_id, "first", "k"), 201)
    message = assert_error(await send_with_key(alice, chat_id, "second", "k"), 422)
    assert "Idempotency-Key" in message
    assert [m["content"] for m in await history(alice, chat_id)] == ["first"]


@pytest.mark.gen_test
async def test_keys_belong_to_one_user_and_one_chat(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    other_chat = await chat_with(alice, title="other")
    ids = [
        assert_ok(await send_with_key(alice, chat_id, "same words", "shared-key"), 201)["id"],
        assert_ok(await send_with_key(bob, chat_id, "same words", "shared-key"), 201)["id"],
        assert_ok(await send_with_key(alice, other_chat, "same words", "shared-key"), 201)["id"],
    ]
    assert ids == [1, 2, 1]
    assert len(await history(alice, chat_id)) == 2


@pytest.mark.gen_test
async def test_sends_without_a_key_are_never_deduplicated(make_user):
    alice = await make_user()
    chat_id = await chat_with(alice)
    for _ in range(2):
        assert_ok(await alice.post(f"/api/chats/{chat_id}", {"content": "again"}), 201)
    assert len(await history(alice, chat_id)) == 2


@pytest.mark.gen_test
@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve", "tab\tkey"])
async def test_a_malformed_key_is_a_400(make_user, key):
    alice = await make_user()
    chat_id = await chat_with(alice)
    response = await send_with_key(alice, chat_id, "hi", key)
    assert "Idempotency-Key" in assert_error(response, 400)
    assert await history(alice, chat_id) == []


@pytest.mark.gen_test
async def test_a_stranger_cannot_replay_anothers_key(make_user):
    alice, mallory = await make_user(), await make_user()
    chat_id = await chat_with(alice)
    assert_ok(await send_with_key(alice, chat_id, "private", "k1"), 201)
    assert_error(await send_with_key(mallory, chat_id, "private", "k1"), 403)


@pytest.mark.gen_test
async def test_the_record_is_kept_24_hours_and_holds_no_key_text(make_user, sync_redis):
    alice = await make_user()
    chat_id = await chat_with(alice)
    assert_ok(await send_with_key(alice, chat_id, "hi", "secret-looking-key"), 201)
    (record,) = sync_redis.keys(keys.send_idempotency_key(chat_id, alice.user_id, "*"))
    assert "secret-looking-key" not in record
    assert 24 * 3600 - 5 <= sync_redis.ttl(record) <= 24 * 3600


@pytest.mark.gen_test
async def test_the_socket_send_takes_a_key_too(make_user, base_url):
    alice = await make_user()
    chat_id = await chat_with(alice)
    socket = await open_socket(base_url, alice.cookies)
    frame = {"op": "send", "chat_id": chat_id, "content": "hi", "idempotency_key": "ws-1"}
    acks = [await answer(socket, {**frame, "request_id": request_id}) for request_id in (1, 2)]
    assert acks[0]["message_id"] == acks[1]["message_id"] == 1
    assert "replayed" not in acks[0] and acks[1]["replayed"] is True
    # The HTTP send with the same key is the same send.
    replay = await send_with_key(alice, chat_id, "hi", "ws-1")
    assert assert_ok(replay, 201)["id"] == 1
    assert len(await history(alice, chat_id)) == 1
    socket.close()


@pytest.mark.gen_test
async def test_on_the_socket_a_null_key_is_no_key_and_a_bad_one_is_named_as_sent(make_user, base_url):
    alice = await make_user()
    chat_id = await chat_with(alice)
    socket = await open_socket(base_url, alice.cookies)
    answers = [
        await answer(socket, {"op": "send", "chat_id": chat_id, "content": "hi", "idempotency_key": key})
        for key in (None, None, "bad key")
    ]
    assert [a["type"] for a in answers] == ["ack", "ack", "error"]
    assert answers[0]["message_id"] != answers[1]["message_id"]
    assert answers[2]["status"] == 400 and answers[2]["error"].startswith("idempotency_key must be")
    socket.close()
