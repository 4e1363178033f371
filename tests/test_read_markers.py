"""Read markers and unread counts: `POST /api/chats/{chat_id}/read`, the
`last_read_id`/`unread_count` of each chat summary, and the `read` event that
reaches the reader's own sockets only."""

import asyncio
import random

import pytest

from .api_helpers import add_member, assert_error, assert_ok, chat_with, chats_of, create_chat, send
from .logclient import GRACE_SECS, Listener, leave
from .processes import user_on
from .redis_clients import settle_pubsub


async def mark_read(client, chat_id, message_id):
    return await client.post(f"/api/chats/{chat_id}/read", {"message_id": message_id})


async def read_up_to(client, chat_id: int, message_id: int) -> None:
    assert_ok(await mark_read(client, chat_id, message_id))


async def badge(client, chat_id: int) -> tuple[int, int]:
    """(last_read_id, unread_count) of the chat in the client's chat list."""
    (chat,) = [c for c in await chats_of(client) if c["id"] == chat_id]
    return chat["last_read_id"], chat["unread_count"]


async def badges(chat_id: int, **clients) -> dict[str, tuple[int, int]]:
    return {name: await badge(client, chat_id) for name, client in clients.items()}


async def edit(client, chat_id: int, message_id: int, content: str) -> None:
    response = await client.put(f"/api/chats/{chat_id}/messages/{message_id}", {"content": content})
    assert_ok(response)


async def delete(client, chat_id: int, message_id: int) -> None:
    assert_ok(await client.delete(f"/api/chats/{chat_id}", {"id": message_id}))


def reads(listener: Listener) -> list[dict]:
    return [e for e in listener.events if e["type"] == "read"]


@pytest.mark.gen_test(timeout=60)
async def test_unread_counts_follow_a_conversation_of_three(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat = await create_chat(alice)
    assert await badge(alice, chat) == (0, 0)  # a new chat: nothing to read
    await add_member(alice, chat, bob)
    assert await badge(bob, chat) == (0, 0)

    a1, a2 = await send(alice, chat, "a1"), await send(alice, chat, "a2")
    # Your own messages are never unread: sending moves your marker.
    assert await badges(chat, alice=alice, bob=bob) == {"alice": (a2, 0), "bob": (0, 2)}
    b3 = await send(bob, chat, "b3")  # replying reads everything before it
    assert await badges(chat, alice=alice, bob=bob) == {"alice": (a2, 1), "bob": (b3, 0)}

    # Joining in the middle: what was said before is not unread.
    await add_member(bob, chat, carol)
    assert await badge(carol, chat) == (b3, 0)
    a4, a5 = await send(alice, chat, "a4"), await send(alice, chat, "a5")
    assert await badges(chat, alice=alice, bob=bob, carol=carol) == {
        "alice": (a5, 0), "bob": (b3, 2), "carol": (b3, 2),
    }  # fmt: skip

    # An edit is not a new message: counts stay.
    await edit(alice, chat, a4, "a4, edited")
    await edit(bob, chat, b3, "b3, edited")
    assert await badges(chat, alice=alice, bob=bob, carol=carol) == {
        "alice": (a5, 0), "bob": (b3, 2), "carol": (b3, 2),
    }  # fmt: skip

    # Forward moves count down; a move back changes nothing (and is still 200).
    await read_up_to(bob, chat, a4)
    assert await badge(bob, chat) == (a4, 1)
    await read_up_to(bob, chat, a1)
    assert await badge(bob, chat) == (a4, 1)
    await read_up_to(alice, chat, b3)  # below her own marker: nothing moves
    assert await badge(alice, chat) == (a5, 0)

    # A deleted message above the marker stops counting; below it changes nothing.
    await delete(alice, chat, a5)
    assert await badges(chat, alice=alice, bob=bob, carol=carol) == {
        "alice": (a5, 0), "bob": (a4, 0), "carol": (b3, 1),
    }  # fmt: skip
    await delete(alice, chat, a1)
    assert await badge(bob, chat) == (a4, 0)
    # The newest id may be read even when deleted (ids are never reused).
    await read_up_to(carol, chat, a5)
    assert await badge(carol, chat) == (a5, 0)

    # Leaving and coming back starts again at the newest message.
    await leave(carol, chat)
    c6 = await send(bob, chat, "b6")
    await add_member(alice, chat, carol)
    assert await badges(chat, alice=alice, bob=bob, carol=carol) == {
        "alice": (a5, 1), "bob": (c6, 0), "carol": (c6, 0),
    }  # fmt: skip
    # The fields come after the summary's own, in the documented order.
    (listed,) = await chats_of(carol)
    assert list(listed)[-2:] == ["last_read_id", "unread_count"], listed


@pytest.mark.gen_test(timeout=60)
async def test_marker_is_per_chat_and_per_user(make_user):
    alice, bob = await make_user(), await make_user()
    first, second = await chat_with(alice, bob), await chat_with(alice, bob)
    for n in range(3):
        await send(alice, first, f"first {n}")
        await send(alice, second, f"second {n}")
    await read_up_to(bob, first, 2)
    listed = {c["id"]: (c["last_read_id"], c["unread_count"]) for c in await chats_of(bob)}
    assert listed == {first: (2, 1), second: (0, 3)}
    assert {c["id"]: c["unread_count"] for c in await chats_of(alice)} == {first: 0, second: 0}


@pytest.mark.gen_test(timeout=120)
async def test_concurrent_marker_moves_never_move_a_marker_back(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat = await chat_with(alice, bob)
    newest = 0
    for n in range(40):
        newest = await send(alice, chat, f"m{n}")
    socket = await Listener.open(base_url, bob, sync_redis)
    rng = random.Random(11)
    wanted = [rng.randint(1, newest) for _ in range(150)]
    seen: list[int] = []  # the marker as the chat list shows it, read again and again meanwhile
    done = asyncio.Event()

    async def watch():
        while not done.is_set():
            seen.append((await badge(bob, chat))[0])

    watcher = asyncio.ensure_future(watch())
    answers = await asyncio.gather(*(mark_read(bob, chat, m) for m in wanted))
    done.set()
    await watcher
    assert all(a.code == 200 for a in answers), [a for a in answers if a.code != 200][:3]
    assert seen == sorted(seen), f"the marker went back: {seen}"
    assert await badge(bob, chat) == (max(wanted), newest - max(wanted))
    # One event per forward move, in the order they were made: never a step back.
    await socket.wait_until(lambda: reads(socket) and reads(socket)[-1]["last_read_id"] == max(wanted), what="read")
    marks = [e["last_read_id"] for e in reads(socket)]
    assert marks == sorted(set(marks)), marks
    assert all(e["unread_count"] == newest - e["last_read_id"] for e in reads(socket)), reads(socket)
    socket.close()


@pytest.mark.gen_test(timeout=60)
async def test_read_errors_in_the_documented_order(make_user, new_client):
    alice, bob, stranger = await make_user(), await make_user(), await make_user()
    chat = await chat_with(alice, bob)
    empty = await create_chat(alice)
    newest = await send(alice, chat, "one")

    assert_error(await mark_read(new_client(), chat, newest), 401)
    for raw_chat, raw_message in (("abc", 1), (chat, None), (chat, 0), (chat, "x"), (chat, -1), (chat, "1" * 15)):
        data = {} if raw_message is None else {"message_id": raw_message}
        assert_error(await bob.post(f"/api/chats/{raw_chat}/read", data), 400)
    assert_error(await mark_read(bob, 999999, 1), 404)
    assert_error(await mark_read(stranger, chat, newest + 5), 403)  # membership before the id's range
    error = assert_error(await mark_read(bob, chat, newest + 1), 400)
    assert error == "message_id is beyond the newest message"
    assert_error(await mark_read(alice, empty, 1), 400)  # no message at all yet
    assert await badge(bob, chat) == (0, 1)  # nothing refused moved anything

    # message_id from the query string, or as a JSON integer.
    assert_ok(await bob.post(f"/api/chats/{chat}/read", params={"message_id": newest}))
    assert await badge(bob, chat) == (newest, 0)
    second = await send(alice, chat, "two")
    response = await bob.post(
        f"/api/chats/{chat}/read/", body=f'{{"message_id": {second}}}', headers={"Content-Type": "application/json"}
    )
    assert_ok(response)
    assert await badge(bob, chat) == (second, 0)
    response = await bob.get(f"/api/chats/{chat}/read")
    assert_error(response, 405)
    assert response.headers["Allow"] == "POST", response.headers


@pytest.mark.gen_test(timeout=60)
async def test_read_event_reaches_the_readers_sockets_only(base_url, make_user, sync_redis):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat = await chat_with(alice, bob, carol)
    for n in range(3):
        await send(alice, chat, f"m{n}")
    settle_pubsub(sync_redis)
    bob_phone, bob_laptop = await Listener.open(base_url, bob), await Listener.open(base_url, bob)
    others = [await Listener.open(base_url, alice), await Listener.open(base_url, carol)]

    await read_up_to(bob, chat, 2)
    expected = {"type": "read", "chat_id": chat, "last_read_id": 2, "unread_count": 1}
    for socket in (bob_phone, bob_laptop):
        await socket.wait_until(lambda s=socket: reads(s), what="bob's read event")
        assert reads(socket) == [expected]
        assert list(reads(socket)[0]) == list(expected)  # fields in the documented order
    await read_up_to(bob, chat, 1)  # nothing moves: nothing is sent
    await read_up_to(carol, chat, 3)  # carol's own sockets would hear it; she has one
    await others[1].wait_until(lambda: reads(others[1]), what="carol's read event")
    await asyncio.sleep(GRACE_SECS)
    assert [reads(s) for s in (bob_phone, bob_laptop)] == [[expected], [expected]]
    assert reads(others[0]) == []  # alice learns nothing of who read what
    assert reads(others[1]) == [{"type": "read", "chat_id": chat, "last_read_id": 3, "unread_count": 0}]
    for socket in (bob_phone, bob_laptop, *others):
        socket.close()


@pytest.mark.gen_test(timeout=90)
async def test_read_event_crosses_processes(two_servers, http_client, sync_redis):
    first, second = two_servers
    alice = await user_on(http_client, first)
    bob = await user_on(http_client, first)
    chat = await chat_with(alice, bob)
    await send(alice, chat, "one")
    await send(alice, chat, "two")
    settle_pubsub(sync_redis)
    elsewhere = await Listener.open(second.base, bob)
    await read_up_to(bob, chat, 1)  # through the first process
    await elsewhere.wait_until(lambda: reads(elsewhere), what="the read event on the other process")
    assert reads(elsewhere) == [{"type": "read", "chat_id": chat, "last_read_id": 1, "unread_count": 1}]
    elsewhere.close()


@pytest.mark.gen_test(timeout=60)
async def test_many_chats_list_their_counts_even_after_the_scripts_are_flushed(make_user, sync_redis):
    """On a cluster the chats sit in many slots (one script per slot, pipelined);
    a Redis that lost its scripts (a restart, SCRIPT FLUSH) loads them again."""
    alice, bob = await make_user(), await make_user()
    expected = {}
    for n in range(12):
        chat = await chat_with(alice, bob)
        for k in range(n % 4):
            await send(alice, chat, f"m{k}")
        if n % 3 == 0 and n % 4:
            await read_up_to(bob, chat, 1)
        expected[chat] = (1 if n % 3 == 0 and n % 4 else 0, n % 4 - (1 if n % 3 == 0 and n % 4 else 0))
    listed = lambda chats: {c["id"]: (c["last_read_id"], c["unread_count"]) for c in chats}  # noqa: E731
    assert listed(await chats_of(bob)) == expected
    sync_redis.script_flush()
    assert listed(await chats_of(bob)) == expected  # (his list may come from the read cache)
    assert all(count == 0 for _, count in listed(await chats_of(alice)).values())  # hers from Redis: never read
    sync_redis.script_flush()
    assert await send(alice, chat, "after the flush") == n % 4 + 1  # one script on its own loads itself too
