"""Typing notices and presence over /api/ws, against real Redis pub/sub."""

import asyncio
import json
import time

import pytest

from .processes import user_on
from .redis_clients import settle_pubsub
from .wsclient import answer, next_event, open_socket


async def chat_of(owner, *members, title="room"):
    chat_id = (await owner.post("/api/chats", {"title": title})).json()["id"]
    for member in members:
        assert (await owner.post(f"/api/chats/{chat_id}/members", {"user_id": member.user_id})).code == 201
    return chat_id


async def socket_on(base, client, sync_redis):
    settle_pubsub(sync_redis)  # on a cluster, the setup's events may still be on their way
    return await open_socket(base, client.cookies)


async def send(client, chat_id, content):
    assert (await client.post(f"/api/chats/{chat_id}", {"content": content})).code == 201


async def quiet(socket, seconds: float = 0.5) -> None:
    """Asserts that nothing arrives on the socket for a while."""
    with pytest.raises(asyncio.TimeoutError):
        event = await next_event(socket, timeout=seconds)
        pytest.fail(f"unexpected event {event}")


def typing(socket, chat_id, **extra) -> None:
    socket.write_message(json.dumps({"op": "typing", "chat_id": chat_id, **extra}))


async def watch(socket, user_ids) -> tuple[dict, dict]:
    """Sends watch_presence; the ack and {user id: online} of the presence events right after it."""
    ack = await answer(socket, {"op": "watch_presence", "user_ids": user_ids, "request_id": "w"})
    if ack["type"] != "ack":
        return ack, {}
    states = {}
    for _ in ack["watching"]:
        event = await next_event(socket)
        assert event["type"] == "presence", event
        states[event["user_id"]] = event["online"]
    return ack, states


async def presence_event(socket, timeout: float = 5.0) -> tuple[int, bool]:
    event = await next_event(socket, timeout)
    assert event["type"] == "presence", event
    return event["user_id"], event["online"]


async def online_in(client, chat_id) -> dict[int, bool]:
    response = await client.get(f"/api/chats/{chat_id}/members")
    assert response.code == 200, response
    return {member["id"]: member["online"] for member in response.json()["members"]}


# Typing


@pytest.mark.gen_test
async def test_typing_reaches_the_other_members_and_not_the_typists_own_sockets(base_url, make_user, sync_redis):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await chat_of(alice, bob, carol)
    mine = [await socket_on(base_url, alice, sync_redis) for _ in range(2)]
    bobs, carols = await socket_on(base_url, bob, sync_redis), await socket_on(base_url, carol, sync_redis)

    typing(mine[0], chat_id)
    notice = {"type": "typing", "chat_id": chat_id, "user_id": alice.user_id}
    assert await next_event(bobs) == notice
    assert await next_event(carols) == notice
    await send(alice, chat_id, "done typing")  # after the notice on the chat's channel
    for socket in mine:
        assert (await next_event(socket))["type"] == "message"  # no typing notice before it
    assert (await online_in(alice, chat_id)) == {alice.user_id: True, bob.user_id: True, carol.user_id: True}


@pytest.mark.gen_test
async def test_typing_is_forwarded_once_per_user_and_chat_every_3_seconds(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    other_chat = await chat_of(alice, bob, title="other")
    first, second = await socket_on(base_url, alice, sync_redis), await socket_on(base_url, alice, sync_redis)
    bobs = await socket_on(base_url, bob, sync_redis)

    started = time.monotonic()
    typing(first, chat_id)
    typing(first, chat_id)
    typing(second, chat_id)  # the same user on another device: held off too
    typing(first, other_chat)  # another chat: its own 3 s
    assert await next_event(bobs) == {"type": "typing", "chat_id": chat_id, "user_id": alice.user_id}
    assert await next_event(bobs) == {"type": "typing", "chat_id": other_chat, "user_id": alice.user_id}
    await answer(first, {"op": "watch_presence", "user_ids": [], "request_id": "after"})  # typing frames handled
    await answer(second, {"op": "watch_presence", "user_ids": [], "request_id": "after"})
    await send(alice, chat_id, "marker")
    assert (await next_event(bobs))["message"]["content"] == "marker"  # no second notice came before it

    await asyncio.sleep(max(0.0, started + 3.1 - time.monotonic()))
    typing(second, chat_id)
    assert await next_event(bobs) == {"type": "typing", "chat_id": chat_id, "user_id": alice.user_id}


@pytest.mark.gen_test
async def test_typing_outside_a_chat_is_an_error_event(base_url, make_user, sync_redis):
    alice, mallory = await make_user(), await make_user()
    chat_id = await chat_of(alice)
    socket = await socket_on(base_url, mallory, sync_redis)
    for chat, status in ((chat_id, 403), (chat_id + 1000, 404)):
        typing(socket, chat, request_id="t")
        error = await next_event(socket)
        assert (error["type"], error["status"], error["chat_id"], error["request_id"]) == ("error", status, chat, "t")
    typing(socket, "x")
    assert (await next_event(socket))["status"] == 400


# Presence


@pytest.mark.gen_test
async def test_watching_gives_the_current_state_at_once_and_ignores_strangers(base_url, make_user, sync_redis):
    alice, bob, carol, stranger = await make_user(), await make_user(), await make_user(), await make_user()
    await chat_of(alice, bob, carol)
    await chat_of(stranger)
    await socket_on(base_url, bob, sync_redis)
    await socket_on(base_url, stranger, sync_redis)
    socket = await socket_on(base_url, alice, sync_redis)

    ids = [bob.user_id, stranger.user_id, carol.user_id, alice.user_id, bob.user_id, 999999]
    ack, states = await watch(socket, ids)
    assert ack == {"type": "ack", "request_id": "w", "watching": [bob.user_id, carol.user_id, alice.user_id]}
    assert states == {bob.user_id: True, carol.user_id: False, alice.user_id: True}

    await socket_on(base_url, carol, sync_redis)
    assert await presence_event(socket) == (carol.user_id, True)
    await open_socket(base_url, stranger.cookies)  # not watched: nothing comes of it
    await quiet(socket)


@pytest.mark.gen_test
async def test_a_user_is_online_until_their_last_socket_closes(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    socket = await socket_on(base_url, alice, sync_redis)
    assert (await watch(socket, [bob.user_id]))[1] == {bob.user_id: False}

    phone = await open_socket(base_url, bob.cookies)
    assert await presence_event(socket) == (bob.user_id, True)
    laptop = await open_socket(base_url, bob.cookies)
    phone.close()
    await quiet(socket)
    assert (await online_in(alice, chat_id))[bob.user_id] is True
    laptop.close()
    assert await presence_event(socket) == (bob.user_id, False)
    assert (await online_in(alice, chat_id))[bob.user_id] is False


@pytest.mark.gen_test
async def test_each_watch_replaces_the_list(base_url, make_user, sync_redis):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    await chat_of(alice, bob, carol)
    socket = await socket_on(base_url, alice, sync_redis)
    await watch(socket, [bob.user_id])
    assert (await watch(socket, [carol.user_id]))[0]["watching"] == [carol.user_id]
    await open_socket(base_url, bob.cookies)  # no longer watched
    await open_socket(base_url, carol.cookies)
    assert await presence_event(socket) == (carol.user_id, True)


@pytest.mark.gen_test
async def test_watch_presence_checks_its_list(base_url, make_user, sync_redis):
    alice = await make_user()
    socket = await socket_on(base_url, alice, sync_redis)
    for user_ids in (list(range(1, 502)), "1,2", [1, "2"], [0], [True], None):
        error, _ = await watch(socket, user_ids)
        assert (error["type"], error["status"], error["request_id"]) == ("error", 400, "w"), user_ids
    ack, _ = await watch(socket, list(range(1, 501)))  # 500 is allowed
    assert ack["watching"] == [alice.user_id]


@pytest.mark.gen_test(timeout=60)
async def test_presence_across_two_processes(two_servers, http_client, sync_redis):
    first, second = two_servers
    alice, bob = await user_on(http_client, first), await user_on(http_client, second)
    chat_id = await chat_of(alice, bob)
    watcher = await socket_on(second.base, alice, sync_redis)
    assert (await watch(watcher, [bob.user_id]))[1] == {bob.user_id: False}

    on_first = await open_socket(first.base, bob.cookies)
    assert await presence_event(watcher) == (bob.user_id, True)
    on_second = await open_socket(second.base, bob.cookies)
    on_first.close()
    await quiet(watcher, 1.0)
    assert (await online_in(alice, chat_id))[bob.user_id] is True
    on_second.close()
    assert await presence_event(watcher) == (bob.user_id, False)
