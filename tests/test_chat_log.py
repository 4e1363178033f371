"""The per-chat log (issue 10) over HTTP and one server process's sockets:
seq numbers on every chat event and the log that replays them, the catch-up
endpoint (input, paging, 410), and what goes over Redis pub/sub.
Resuming and members coming and going: test_chat_log_resume.py."""

import asyncio
import json
import time

import pytest

from storage import keys

from .api_helpers import add_member, assert_error, create_chat, history, send, summary
from .logclient import (
    GRACE_SECS,
    Listener,
    assert_contiguous,
    events_query,
    events_since,
    leave,
    log_page,
    newest_seq,
    remove,
    whole_log,
    wrong_epoch,
)
from .redis_clients import redis_mode


chat_events_channel = keys.chat_events_channel


# Seq numbers and the log, as one member's socket and the catch-up endpoint see them.


@pytest.mark.gen_test(timeout=60)
async def test_every_event_kind_carries_the_next_seq_and_the_log_replays_it_exactly(base_url, make_user, sync_redis):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    sockets = {user: await Listener.open(base_url, user, sync_redis) for user in (alice, bob, carol)}

    chat_id = await create_chat(alice, "kinds")
    created = await summary(alice, chat_id)
    assert created["seq"] == 0 and isinstance(created["epoch"], str) and created["epoch"], created
    await add_member(alice, chat_id, bob)  # 1
    doomed = await send(bob, chat_id, "  first 😀\n")  # 2
    assert (await bob.delete(f"/api/chats/{chat_id}", {"id": doomed})).code == 200  # 3
    assert (await alice.put(f"/api/chats/{chat_id}", {"title": " renamed "})).code == 200  # 4
    await add_member(bob, chat_id, carol)  # 5
    await remove(alice, chat_id, carol)  # 6
    kept = await send(alice, chat_id, "second")  # 7
    assert (await summary(bob, chat_id))["seq"] == 7
    await leave(bob, chat_id)  # 8

    for user in (alice, bob):
        await sockets[user].wait_for_seq(chat_id, 8)
    await asyncio.sleep(GRACE_SECS)
    got = sockets[alice].of_chat(chat_id)
    assert_contiguous([e["seq"] for e in got], 1, 8)
    assert all(list(e)[:3] == ["type", "chat_id", "seq"] for e in got), got
    (stored,) = await history(alice, chat_id)
    assert stored["id"] == kept
    a, b, c = alice.user_id, bob.user_id, carol.user_id
    assert [{k: v for k, v in e.items() if k != "message"} for e in got] == [
        {"type": "member_added", "chat_id": chat_id, "seq": 1, "user_id": b},
        {"type": "message", "chat_id": chat_id, "seq": 2},
        {"type": "message_deleted", "chat_id": chat_id, "seq": 3, "message_id": doomed},
        {"type": "chat_renamed", "chat_id": chat_id, "seq": 4, "title": "renamed"},
        {"type": "member_added", "chat_id": chat_id, "seq": 5, "user_id": c},
        {"type": "member_removed", "chat_id": chat_id, "seq": 6, "user_id": c, "owner_id": a},
        {"type": "message", "chat_id": chat_id, "seq": 7},
        {"type": "member_removed", "chat_id": chat_id, "seq": 8, "user_id": b, "owner_id": a},
    ]
    first = got[1]["message"]
    assert (first["id"], first["sender_id"], first["content"]) == (doomed, b, "  first 😀\n"), first
    assert got[6]["message"] == stored

    log = await whole_log(alice, chat_id, 0)
    # As the sockets got them, but for the deleted message, replayed without its text.
    replayed_first = {**got[1], "message": {**{k: first[k] for k in ("id", "sender_id", "time")}, "deleted": True}}
    assert log["events"] == [got[0], replayed_first, *got[2:]]
    assert log["seq"] == 8 and log["epoch"] == created["epoch"]
    assert sockets[bob].of_chat(chat_id) == got  # the leaver hears their own leaving
    assert sockets[carol].of_chat(chat_id) == got[4:6]  # from being added to being removed
    assert {k: (await summary(alice, chat_id))[k] for k in ("seq", "epoch")} == {"seq": 8, "epoch": log["epoch"]}


@pytest.mark.gen_test(timeout=60)
async def test_the_log_serves_events_as_the_socket_got_them_field_order_included(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    socket = await Listener.open(base_url, bob, sync_redis)
    for n in range(5):
        await send(alice, chat_id, f'quote " and \\ and / and é {n}')
    await socket.wait_for_seq(chat_id, 6)
    page = await log_page(bob, chat_id, 1)
    assert page["seq"] == 6
    assert [list(e.items()) for e in page["events"]] == [list(e.items()) for e in socket.of_chat(chat_id)]
    assert [list(e["message"]) for e in page["events"]] == [["id", "sender_id", "time", "content"]] * 5


@pytest.mark.gen_test(timeout=60)
async def test_a_deleted_messages_event_replays_without_its_content(base_url, make_user, sync_redis):
    alice = await make_user()
    chat_id = await create_chat(alice)
    socket = await Listener.open(base_url, alice, sync_redis)
    message_id = await send(alice, chat_id, "regretted")
    assert (await alice.delete(f"/api/chats/{chat_id}", {"id": message_id})).code == 200
    await socket.wait_for_seq(chat_id, 2)
    sent, deleted = socket.of_chat(chat_id)
    assert sent["message"]["content"] == "regretted" and deleted["message_id"] == message_id
    # Deleted means gone: the replay keeps the event (its seq, id, sender, time), not the text.
    stub = {k: sent["message"][k] for k in ("id", "sender_id", "time")} | {"deleted": True}
    assert (await log_page(alice, chat_id, 0))["events"] == [{**sent, "message": stub}, deleted]
    assert "regretted" not in str(sync_redis.zrange(keys.chat_log_prior_key(chat_id), 0, -1))
    assert await history(alice, chat_id) == []  # gone from history all the same


@pytest.mark.gen_test(timeout=60)
async def test_summaries_carry_the_newest_seq_of_each_chat(make_user):
    alice, bob = await make_user(), await make_user()
    quiet, busy = await create_chat(alice, "quiet"), await create_chat(alice, "busy")
    await add_member(alice, busy, bob)
    for n in range(3):
        await send(bob, busy, f"n{n}")
    assert (await alice.put(f"/api/chats/{busy}", {"title": "busier"})).code == 200
    busy_seq, busy_epoch = await newest_seq(alice, busy)
    assert busy_seq == 5
    for user in (alice, bob):
        assert {k: (await summary(user, busy))[k] for k in ("seq", "epoch")} == {"seq": 5, "epoch": busy_epoch}
    quiet_summary = await summary(alice, quiet)
    assert quiet_summary["seq"] == 0 and quiet_summary["epoch"] == (await newest_seq(alice, quiet))[1]


@pytest.mark.gen_test(timeout=60)
async def test_the_last_member_out_ends_the_chat_and_its_log(base_url, make_user, sync_redis):
    alice = await make_user()
    chat_id = await create_chat(alice)
    socket = await Listener.open(base_url, alice, sync_redis)
    await send(alice, chat_id, "alone")
    await leave(alice, chat_id)
    await socket.wait_for_seq(chat_id, 2)
    assert socket.of_chat(chat_id)[-1] == {
        "type": "member_removed", "chat_id": chat_id, "seq": 2, "user_id": alice.user_id, "owner_id": None,
    }  # fmt: skip
    assert_error(await events_since(alice, chat_id, 0), 404)


@pytest.mark.gen_test(timeout=60)
async def test_refused_changes_and_replayed_sends_add_no_event(base_url, make_user, sync_redis):
    alice, bob, stranger = await make_user(), await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)  # 1
    socket = await Listener.open(base_url, alice, sync_redis)
    headers = {"Idempotency-Key": "same-send"}
    first = await alice.post(f"/api/chats/{chat_id}", {"content": "once"}, headers=headers)  # 2
    again = await alice.post(f"/api/chats/{chat_id}", {"content": "once"}, headers=headers)
    assert first.code == 201 and again.code in (200, 201) and again.json()["id"] == first.json()["id"], again
    refused = [
        await stranger.post(f"/api/chats/{chat_id}", {"content": "let me in"}),
        await alice.post(f"/api/chats/{chat_id}/members", {"user_id": bob.user_id}),
        await bob.delete(f"/api/chats/{chat_id}/members", {"user_id": alice.user_id}),
        await alice.delete(f"/api/chats/{chat_id}/members", {"user_id": stranger.user_id}),
        await bob.delete(f"/api/chats/{chat_id}", {"id": first.json()["id"]}),
        await stranger.put(f"/api/chats/{chat_id}", {"title": "mine now"}),
    ]
    assert [r.code for r in refused] == [403, 409, 403, 404, 403, 403], refused
    await send(bob, chat_id, "next")  # 3
    await socket.wait_for_seq(chat_id, 3)
    await asyncio.sleep(GRACE_SECS)
    assert socket.seqs(chat_id) == [2, 3]
    assert [e["seq"] for e in (await whole_log(alice, chat_id))["events"]] == [1, 2, 3]


@pytest.mark.gen_test(timeout=60)
async def test_an_account_deletion_is_a_member_removed_in_each_of_its_chats(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chats = [await create_chat(alice, f"with bob {n}") for n in range(2)]
    for chat_id in chats:
        await add_member(alice, chat_id, bob)  # 1
        await send(bob, chat_id, "bye soon")  # 2
    socket = await Listener.open(base_url, alice, sync_redis)
    assert (await bob.delete(f"/api/user/{bob.user_id}")).code == 200
    for chat_id in chats:
        await socket.wait_for_seq(chat_id, 3)
        (event,) = socket.of_chat(chat_id)
        assert event == {
            "type": "member_removed", "chat_id": chat_id, "seq": 3, "user_id": bob.user_id, "owner_id": alice.user_id,
        }  # fmt: skip
        assert (await whole_log(alice, chat_id))["events"][-1] == event


# The catch-up endpoint's input and paging.


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"since": ""},
        {"since": "-1"},
        {"since": "abc"},
        {"since": "1.5"},
        {"since": "0x10"},
        {"since": "0", "limit": "0"},
        {"since": "0", "limit": "1001"},
        {"since": "0", "limit": "-3"},
        {"since": "0", "limit": "ten"},
        {"since": "0", "epoch": "x" * 1000},
        {"since": "0", "epoch": "not an epoch!"},
    ],
)
async def test_bad_since_or_limit_is_400(make_user, params):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "x")
    assert_error(await events_query(alice, chat_id, params), 400)
    # Input is checked before the chat and the membership (400 -> 404 -> 403).
    assert_error(await events_query(stranger, chat_id, params), 400)
    assert_error(await events_query(alice, 99_999_999, params), 400)


@pytest.mark.gen_test
async def test_unknown_chat_is_404_and_a_stranger_gets_403(make_user, new_client):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "members only")
    assert_error(await events_since(alice, 99_999_999, 0), 404)
    assert_error(await events_since(stranger, chat_id, 0), 403)
    assert_error(await events_since(alice, "abc", 0), 400)
    assert_error(await events_since(new_client(), chat_id, 0), 401)


@pytest.mark.gen_test(timeout=60)
async def test_limit_pages_through_the_log_oldest_first(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    for n in range(25):
        await send(alice, chat_id, f"p{n}")
    seen = []
    for since, expected in ((0, range(1, 11)), (10, range(11, 21)), (20, range(21, 26)), (25, range(0))):
        page = await log_page(alice, chat_id, since, limit=10)
        assert page["seq"] == 25
        assert [e["seq"] for e in page["events"]] == list(expected)
        seen += page["events"]
    assert [e["message"]["content"] for e in seen] == [f"p{n}" for n in range(25)]
    assert [e["seq"] for e in (await log_page(alice, chat_id, 7, limit=1))["events"]] == [8]
    assert len((await log_page(alice, chat_id, 0, limit=1000))["events"]) == 25


@pytest.mark.gen_test(timeout=60)
async def test_the_default_page_is_100_events(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    await asyncio.gather(*(send(alice, chat_id, f"d{n}") for n in range(120)))
    page = await log_page(alice, chat_id, 0)
    assert [e["seq"] for e in page["events"]] == list(range(1, 101)) and page["seq"] == 120


@pytest.mark.gen_test
async def test_a_wrong_epoch_or_a_seq_beyond_the_newest_is_410(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    for n in range(3):
        await send(alice, chat_id, f"e{n}")
    seq, epoch = await newest_seq(alice, chat_id)
    assert seq == 3
    assert (await log_page(alice, chat_id, 1, epoch=epoch))["events"][0]["seq"] == 2
    assert_error(await events_since(alice, chat_id, 1, epoch=wrong_epoch(epoch)), 410)
    assert_error(await events_since(alice, chat_id, 0, epoch=wrong_epoch(epoch)), 410)
    assert (await log_page(alice, chat_id, 3)) == {"seq": 3, "epoch": epoch, "events": []}
    assert_error(await events_since(alice, chat_id, 4), 410)
    assert_error(await events_since(alice, chat_id, 1000), 410)


# What goes over Redis.


def _listen(sync_redis, chat_id: int, *user_ids: int):
    """Pub/sub listeners on the chat's channel (sharded on a Redis 7 cluster) and on users' channels."""
    channel = chat_events_channel(chat_id)
    if redis_mode() == "cluster":
        node = sync_redis.get_redis_connection(sync_redis.get_node_from_key(channel))
        chat_listener = node.pubsub()
        chat_listener.ssubscribe(channel)
        user_listener = sync_redis.get_redis_connection(sync_redis.get_node_from_key(channel)).pubsub()
    else:
        chat_listener = sync_redis.pubsub()
        chat_listener.subscribe(channel)
        user_listener = sync_redis.pubsub()
    user_listener.subscribe(*(keys.user_events_channel(u) for u in user_ids))
    return chat_listener, user_listener


async def _drain(listener, wanted: int, timeout: float) -> list[dict]:
    """Messages on a sync pub/sub listener, polled without blocking the server's event loop."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (len(got) < wanted or wanted == 0):
        message = listener.get_message(timeout=0)
        if message is None:
            await asyncio.sleep(0.01)
        elif message["type"] in ("message", "smessage"):
            got.append({"channel": message["channel"], **json.loads(message["data"])})
    return got


@pytest.mark.gen_test(timeout=60)
async def test_each_change_is_published_once_on_the_chat_channel(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    socket = await Listener.open(base_url, alice, sync_redis)
    chat_listener, user_listener = _listen(sync_redis, chat_id, alice.user_id, bob.user_id)
    try:
        await asyncio.sleep(0.1)
        await add_member(alice, chat_id, bob)  # 1
        message_id = await send(bob, chat_id, "once")  # 2
        assert (await alice.put(f"/api/chats/{chat_id}", {"title": "once more"})).code == 200  # 3
        assert (await bob.delete(f"/api/chats/{chat_id}", {"id": message_id})).code == 200  # 4
        on_chat = await _drain(chat_listener, 4, 5.0)
        on_chat += await _drain(chat_listener, 0, GRACE_SECS)
        on_users = await _drain(user_listener, 0, GRACE_SECS)
    finally:
        chat_listener.close()
        user_listener.close()
    await socket.wait_for_seq(chat_id, 4)
    assert [{k: v for k, v in e.items() if k != "channel"} for e in on_chat] == socket.of_chat(chat_id)
    assert [e["seq"] for e in on_chat] == [1, 2, 3, 4]
    # The users' channels carry only what is about the user: bob's member_added.
    assert [(e["channel"], e["type"], e.get("user_id")) for e in on_users] == [
        (keys.user_events_channel(bob.user_id), "member_added", bob.user_id)
    ], on_users


async def _redis_major(sync_redis) -> int:
    return int(sync_redis.info("server")["redis_version"].split(".")[0])


@pytest.mark.gen_test(timeout=60)
async def test_on_a_cluster_the_chat_master_holds_the_sharded_subscription(base_url, make_user, sync_redis):
    if redis_mode() != "cluster":
        pytest.skip("sharded pub/sub: run with CHAT_TEST_REDIS=cluster")
    if await _redis_major(sync_redis) < 7:
        pytest.skip("sharded pub/sub needs Redis 7")
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    channel = chat_events_channel(chat_id)
    socket = await Listener.open(base_url, bob, sync_redis)
    await send(alice, chat_id, "sharded")
    await socket.wait_for_seq(chat_id, 2)
    owner = sync_redis.get_node_from_key(channel)
    for node in sync_redis.get_primaries():
        listed = sync_redis.get_redis_connection(node).execute_command("PUBSUB SHARDCHANNELS")
        listed = [c.decode() if isinstance(c, bytes) else c for c in listed]
        if node.name == owner.name:
            assert channel in listed, (node.name, listed)
        else:
            assert channel not in listed, (node.name, listed)


def chat_subscribers(sync_redis, chat_id: int) -> int:
    """Subscriptions to the chat's channel: classic ones on every node, plus
    sharded ones on the master that owns the channel (Redis 7 cluster)."""
    channel = keys.chat_events_channel(chat_id)
    count = dict(sync_redis.pubsub_numsub(channel))[channel]
    if redis_mode() == "cluster" and int(sync_redis.info("server")["redis_version"].split(".")[0]) >= 7:
        owner = sync_redis.get_redis_connection(sync_redis.get_node_from_key(channel))
        ((_, sharded),) = owner.execute_command("PUBSUB SHARDNUMSUB", channel)
        count += sharded
    return count


async def until_subscribers(sync_redis, chat_id: int, expected: int) -> None:
    for _ in range(200):
        if chat_subscribers(sync_redis, chat_id) == expected:
            return
        await asyncio.sleep(0.02)
    assert chat_subscribers(sync_redis, chat_id) == expected


@pytest.mark.gen_test(timeout=60)
async def test_a_process_subscribes_once_per_chat_and_drops_it_when_no_socket_needs_it(base_url, make_user, sync_redis):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    sockets = [await Listener.open(base_url, user, sync_redis) for user in (alice, alice, bob)]
    stranger = await Listener.open(base_url, carol)  # in no chat: subscribes to none
    assert chat_subscribers(sync_redis, chat_id) == 1  # three sockets, two users, one subscription
    await remove(alice, chat_id, bob)
    await sockets[2].wait_for_seq(chat_id, 2)
    sockets[0].close()
    await asyncio.sleep(GRACE_SECS)
    assert chat_subscribers(sync_redis, chat_id) == 1  # alice's other socket still needs it
    sockets[1].close()
    await until_subscribers(sync_redis, chat_id, 0)  # bob left the chat; nobody here needs it
    sockets[2].close()
    stranger.close()
