"""The per-chat log (issue 10) across failures and processes: a process whose
pub/sub connection is killed resumes its chats by itself, two `run.py`
processes deliver one chat's events in seq order, and a small
`--chat-log-events` trims the log (410 for what is gone)."""

import asyncio

import pytest

from storage import keys

from .api_helpers import add_member, assert_error, create_chat, send
from .logclient import Listener, Sender, assert_contiguous, events_since, log_page, newest_seq, whole_log
from .processes import RunningServer, user_on
from .redis_clients import kill_pubsub_connections, settle_pubsub

GRACE_SECS = 0.5


log_key, prior_key = keys.chat_log_key, keys.chat_log_prior_key


# A killed pub/sub connection (in-process server).


@pytest.mark.gen_test(timeout=90)
async def test_a_killed_pubsub_connection_mid_burst_loses_nothing(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)  # seq 1
    socket = await Listener.open(base_url, bob, sync_redis)
    count = 200
    sender = Sender(alice, chat_id).start(count, pause_secs=0.003)
    await sender.until(40, timeout=30)
    assert sync_redis.client_kill_filter(_type="pubsub") >= 1
    await sender.until(60, timeout=30)
    assert kill_pubsub_connections(sync_redis) >= 1  # once more, as soon as it is back (it may be resuming)
    sent = await sender.done()
    await socket.wait_for_seq(chat_id, count + 1, timeout=30)
    await asyncio.sleep(GRACE_SECS)

    got = socket.of_chat(chat_id)
    assert_contiguous([e["seq"] for e in got], 2, count + 1)
    assert [(e["message"]["id"], e["message"]["content"]) for e in got] == sent
    assert got == (await whole_log(bob, chat_id, 1))["events"]
    # The log could serve everything, and nothing else happened: no "re-read" of any kind.
    assert not [e for e in socket.events if e["type"] == "resync"]


@pytest.mark.gen_test(timeout=90)
async def test_events_sent_while_the_pubsub_connection_is_down_arrive_by_themselves(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chats = [await create_chat(alice, f"outage {n}") for n in range(3)]
    for chat_id in chats:
        await add_member(alice, chat_id, bob)  # seq 1 of each
    sockets = [await Listener.open(base_url, bob, sync_redis), await Listener.open(base_url, alice)]
    assert sync_redis.client_kill_filter(_type="pubsub") >= 1
    for n in range(5):  # at once: most are stored before the process has even noticed
        for chat_id in chats:
            await send(alice, chat_id, f"during {n}")
    for socket in sockets:
        for chat_id in chats:
            await socket.wait_for_seq(chat_id, 6, timeout=30)
    for chat_id in chats:
        await send(alice, chat_id, "after")
    for socket in sockets:
        for chat_id in chats:
            await socket.wait_for_seq(chat_id, 7, timeout=30)
    await asyncio.sleep(GRACE_SECS)
    for socket in sockets:
        for chat_id in chats:
            got = socket.of_chat(chat_id)
            assert_contiguous([e["seq"] for e in got], 2, 7)
            assert [e["message"]["content"] for e in got] == [f"during {n}" for n in range(5)] + ["after"]
        assert not [e for e in socket.events if e["type"] == "resync"]


@pytest.mark.gen_test(timeout=90)
async def test_a_member_added_during_an_outage_still_gets_their_member_added(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "before bob")
    socket = await Listener.open(base_url, bob, sync_redis)
    assert sync_redis.client_kill_filter(_type="pubsub") >= 1
    await add_member(alice, chat_id, bob)  # seq 2, published while the connection is down
    await send(alice, chat_id, "welcome")  # seq 3
    # bob's process learns of the chat from the user channel, which keeps no
    # log: the member_added, or a "re-read everything", must reach him.
    await socket.wait_until(
        lambda: socket.of_chat(chat_id) or any(e == {"type": "resync"} for e in socket.events),
        timeout=30,
        what="the member_added or a resync",
    )
    if socket.of_chat(chat_id):
        await socket.wait_for_seq(chat_id, 3, timeout=30)
        await asyncio.sleep(GRACE_SECS)
        assert socket.seqs(chat_id) == [2, 3]
        assert socket.of_chat(chat_id)[0]["type"] == "member_added"
    await send(alice, chat_id, "later")  # and from now on, live
    await socket.wait_for_seq(chat_id, 4, timeout=30)
    assert socket.seqs(chat_id)[-1] == 4 and socket.seqs(chat_id).count(4) == 1


@pytest.mark.gen_test(timeout=90)
async def test_a_socket_opened_during_an_outage_gets_its_chats_once_it_is_over(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)  # 1
    settle_pubsub(sync_redis)
    assert sync_redis.client_kill_filter(_type="pubsub") >= 1
    socket = await Listener.open(base_url, bob)  # ready within the subscription's wait, down or not
    sent = await Sender(alice, chat_id).start(30).done()  # 2..31
    await socket.wait_for_seq(chat_id, 31, timeout=30)
    ack, _ = await socket.resume(chat_id, 1)  # a client that resumes after ready: each event once
    assert (ack["type"], ack["seq"]) == ("ack", 31), ack
    await asyncio.sleep(GRACE_SECS)
    assert sorted(socket.seqs(chat_id)) == list(range(2, 32))
    assert [e["message"]["content"] for e in sorted(socket.of_chat(chat_id), key=lambda e: e["seq"])] == [
        content for _, content in sent
    ]


# Two run.py processes.






@pytest.mark.gen_test(timeout=120)
async def test_two_processes_deliver_one_chats_events_in_seq_order(two_servers, http_client, sync_redis):
    first, second = two_servers
    alice = await user_on(http_client, first)
    bob = await user_on(http_client, second)
    chat_id = await create_chat(alice, "two processes")
    await add_member(alice, chat_id, bob)  # seq 1
    settle_pubsub(sync_redis)
    sockets = [
        await Listener.open(first.base, alice), await Listener.open(second.base, alice),
        await Listener.open(first.base, bob), await Listener.open(second.base, bob),
    ]  # fmt: skip
    count = 120  # from each, at once: alice through the first process, bob through the second
    senders = [Sender(alice, chat_id, "a").start(count), Sender(bob, chat_id, "b").start(count)]
    assert (await alice.put(f"/api/chats/{chat_id}", {"title": "renamed mid-flow"})).code == 200
    for sender in senders:
        await sender.done()
    newest = 1 + 2 * count + 1
    assert (await newest_seq(alice, chat_id))[0] == newest
    for socket in sockets:
        await socket.wait_for_seq(chat_id, newest, timeout=30)
    await asyncio.sleep(GRACE_SECS)
    log = (await whole_log(bob, chat_id, 1))["events"]
    for socket in sockets:
        assert_contiguous(socket.seqs(chat_id), 2, newest)
        assert socket.of_chat(chat_id) == log
    for sender in senders:  # each sender's messages in the order it sent them
        mine = [e["message"]["content"] for e in log if e["type"] == "message" and e["message"]["content"][0] == sender.prefix]
        assert mine == [content for _, content in sender.sent]


@pytest.mark.gen_test(timeout=120)
async def test_resume_on_the_other_process_continues_where_the_first_left(two_servers, http_client, sync_redis):
    first, second = two_servers
    alice = await user_on(http_client, first)
    bob = await user_on(http_client, first)
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    epoch = (await log_page(bob, chat_id, 0))["epoch"]
    settle_pubsub(sync_redis)
    on_first = await Listener.open(first.base, bob)
    sender = Sender(alice, chat_id).start(200, pause_secs=0.002)
    await on_first.wait_for_seq(chat_id, 60, timeout=30)
    on_first.close()
    last = on_first.seqs(chat_id)[-1]
    on_second = await Listener.open(second.base, bob)
    ack, _ = await on_second.resume(chat_id, last, epoch)
    assert (ack["type"], ack["epoch"]) == ("ack", epoch), ack
    await sender.done()
    await on_second.wait_for_seq(chat_id, 201, timeout=30)
    await asyncio.sleep(GRACE_SECS)
    got = on_first.of_chat(chat_id) + sorted(
        (e for e in on_second.of_chat(chat_id) if e["seq"] > last), key=lambda e: e["seq"]
    )
    assert_contiguous([e["seq"] for e in got], got[0]["seq"], 201)
    assert sorted(on_second.seqs(chat_id)) == list(range(last + 1, 202))  # none twice
    assert got == (await whole_log(bob, chat_id, got[0]["seq"] - 1))["events"]


# A small --chat-log-events: the log is trimmed.


@pytest.fixture
def small_log_server(redis_url, sync_redis, tmp_path):
    server = RunningServer(
        "--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off", "--chat-log-events", "5"
    )  # fmt: skip
    yield server
    assert server.stop() == 0


def first_kept_seq(sync_redis, chat_id: int) -> int:
    (entry_id, _), = sync_redis.xrange(log_key(chat_id), count=1)
    return int(entry_id.split("-")[0])


@pytest.mark.gen_test(timeout=120)
async def test_a_seq_older_than_the_log_keeps_is_410(small_log_server, http_client, sync_redis):
    alice = await user_on(http_client, small_log_server)
    chat_id = await create_chat(alice)
    epoch = (await log_page(alice, chat_id, 0))["epoch"]
    deleted = await send(alice, chat_id, "soon gone")  # seq 1
    assert (await alice.delete(f"/api/chats/{chat_id}", {"id": deleted})).code == 200  # seq 2
    assert sync_redis.zcard(prior_key(chat_id)) == 1  # kept for the replay of seq 1
    sent = 2
    # MAXLEN ~ trims whole stream nodes only: send until the first ones are gone.
    while first_kept_seq_or_none(sync_redis, chat_id) in (None, 1, 2):
        assert sent < 3000, "the log was never trimmed"
        await asyncio.gather(*(send(alice, chat_id, f"t{sent + n}") for n in range(50)))
        sent += 50
    kept = first_kept_seq(sync_redis, chat_id)
    newest = sent
    # What was kept for replaying the deleted message went with its event.
    assert sync_redis.zcard(prior_key(chat_id)) == 0
    assert (await newest_seq(alice, chat_id)) == (newest, epoch)  # trimming is not a new epoch

    assert_error(await events_since(alice, chat_id, 1), 410)
    assert_error(await events_since(alice, chat_id, kept - 2, epoch=epoch), 410)
    oldest = await log_page(alice, chat_id, kept - 1, limit=3)
    assert [e["seq"] for e in oldest["events"]] == [kept, kept + 1, kept + 2]
    from_start = await log_page(alice, chat_id, 0, limit=3)  # 0: from what is kept, never 410
    assert from_start["events"] == oldest["events"]
    latest = await log_page(alice, chat_id, newest - 5)  # at least the last --chat-log-events are kept
    assert [e["seq"] for e in latest["events"]] == list(range(newest - 4, newest + 1))
    shown = (await alice.get(f"/api/chats/{chat_id}", params={"limit": 5})).json()["messages"]
    assert [e["message"] for e in latest["events"]] == shown

    settle_pubsub(sync_redis)
    socket = await Listener.open(small_log_server.base, alice)
    error, _ = await socket.resume(chat_id, 1, epoch)
    assert (error["type"], error["status"], error["chat_id"]) == ("error", 410, chat_id), error
    ack, _ = await socket.resume(chat_id, newest - 3, epoch)
    assert (ack["type"], ack["seq"]) == ("ack", newest), ack
    assert socket.seqs(chat_id) == [newest - 2, newest - 1, newest]

    # A deletion after the trim keeps only its own message's version.
    newest += 2
    other = await send(alice, chat_id, "deleted after the trim")
    assert (await alice.delete(f"/api/chats/{chat_id}", {"id": other})).code == 200
    assert [score for _, score in sync_redis.zrange(prior_key(chat_id), 0, -1, withscores=True)] == [newest], (
        sync_redis.zrange(prior_key(chat_id), 0, -1, withscores=True)
    )


def first_kept_seq_or_none(sync_redis, chat_id: int) -> int | None:
    entries = sync_redis.xrange(log_key(chat_id), count=1)
    return int(entries[0][0].split("-")[0]) if entries else None
