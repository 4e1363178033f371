"""The per-chat log (issue 10) on one server process's sockets: the `resume`
op (replay, ack, errors, racing with sends, a reconnect mid-burst), `ready`
before anything else, and members who come and go while messages flow."""

import asyncio

import pytest

from .api_helpers import add_member, assert_error, create_chat, send, summary
from .logclient import (
    GRACE_SECS,
    Listener,
    Sender,
    assert_contiguous,
    assert_resumed,
    events_since,
    newest_seq,
    remove,
    wait_for_log,
    whole_log,
    wrong_epoch,
)
from .redis_clients import settle_pubsub
from .wsclient import next_event, open_socket


# Resuming over the socket.


@pytest.mark.gen_test(timeout=60)
async def test_resume_replays_what_was_missed_then_acks_then_goes_live(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    for n in range(4):
        await send(alice, chat_id, f"r{n}")
    log = await whole_log(bob, chat_id)
    socket = await Listener.open(base_url, bob, sync_redis)

    ack, _ = await socket.resume(chat_id, 0, log["epoch"])
    assert ack == {"type": "ack", "request_id": ack["request_id"], "chat_id": chat_id, "seq": 5, "epoch": log["epoch"]}
    before_ack = socket.events[: socket.events.index(ack)]
    assert [e for e in before_ack if e.get("chat_id") == chat_id] == log["events"]

    ack, _ = await socket.resume(chat_id, 5, log["epoch"])  # nothing missed: only the ack
    assert (ack["type"], ack["seq"]) == ("ack", 5)
    await send(alice, chat_id, "live again")
    await socket.wait_for_seq(chat_id, 6)
    await asyncio.sleep(GRACE_SECS)
    assert socket.seqs(chat_id) == [1, 2, 3, 4, 5, 6]

    other = await Listener.open(base_url, bob)
    ack, _ = await other.resume(chat_id, 3)  # the epoch may be left out
    assert (ack["type"], ack["seq"], ack["epoch"]) == ("ack", 6, log["epoch"])
    assert other.of_chat(chat_id) == socket.of_chat(chat_id)[3:]


@pytest.mark.gen_test
async def test_resume_with_a_lost_epoch_or_beyond_the_newest_is_a_410_error(base_url, make_user, sync_redis):
    alice = await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "one")
    seq, epoch = await newest_seq(alice, chat_id)
    socket = await Listener.open(base_url, alice, sync_redis)
    for since, given_epoch in ((0, wrong_epoch(epoch)), (1, wrong_epoch(epoch)), (seq + 1, epoch), (seq + 50, None)):
        error, _ = await socket.resume(chat_id, since, given_epoch)
        assert set(error) == {"type", "request_id", "chat_id", "status", "error"}, error
        assert (error["type"], error["status"], error["chat_id"]) == ("error", 410, chat_id), error
    await asyncio.sleep(GRACE_SECS)
    assert socket.of_chat(chat_id) == []  # nothing replayed for a refused resume
    ack, _ = await socket.resume(chat_id, 0, epoch)
    assert ack["type"] == "ack" and socket.seqs(chat_id) == [1]  # and the socket still works


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "frame, status",
    [
        ({"chat_id": "{stranger_chat}", "since": 0}, 403),
        ({"chat_id": 99_999_999, "since": 0}, 404),
        ({"chat_id": "{own_chat}"}, 400),
        ({"chat_id": "{own_chat}", "since": -1}, 400),
        ({"chat_id": "{own_chat}", "since": "soon"}, 400),
        ({"chat_id": "abc", "since": 0}, 400),
        ({"since": 0}, 400),
    ],
)
async def test_resume_input_errors(base_url, make_user, sync_redis, frame, status):
    alice, stranger = await make_user(), await make_user()
    ids = {"{own_chat}": await create_chat(alice), "{stranger_chat}": await create_chat(stranger)}
    await send(stranger, ids["{stranger_chat}"], "private")
    socket = await Listener.open(base_url, alice, sync_redis)
    frame = {"op": "resume", "request_id": "bad", **{k: ids.get(v, v) if isinstance(v, str) else v for k, v in frame.items()}}
    socket.write(frame)
    error = await socket.reply("bad")
    assert (error["type"], error["status"]) == ("error", status), error
    await asyncio.sleep(0.2)
    assert not any(e["type"] in ("message",) for e in socket.events), socket.events


@pytest.mark.gen_test(timeout=90)
async def test_a_reconnect_mid_burst_resumes_with_every_event_once_and_in_order(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)  # seq 1
    epoch = (await summary(bob, chat_id))["epoch"]
    first = await Listener.open(base_url, bob, sync_redis)
    ack, _ = await first.resume(chat_id, 0, epoch)
    assert ack["type"] == "ack", ack
    count = 300
    sender = Sender(alice, chat_id).start(count)

    await first.wait_for_seq(chat_id, 80, timeout=30)
    first.close()  # mid-burst: what was not read yet is lost with the socket
    got_first = first.of_chat(chat_id)
    last = got_first[-1]["seq"]
    assert last < count, "the burst was over before the reconnect: nothing tested"
    second = await Listener.open(base_url, bob)
    ack, _ = await second.resume(chat_id, last, epoch)
    assert (ack["type"], ack["epoch"]) == ("ack", epoch) and ack["seq"] >= last, ack

    sent = await sender.done()
    await second.wait_for_seq(chat_id, count + 1, timeout=30)
    await asyncio.sleep(GRACE_SECS)
    assert_contiguous([e["seq"] for e in got_first], 1, last)
    assert_resumed(second.of_chat(chat_id), last, count + 1)
    received = got_first + sorted(second.of_chat(chat_id), key=lambda e: e["seq"])
    assert [(e["message"]["id"], e["message"]["content"]) for e in received[1:]] == sent
    assert received == (await whole_log(bob, chat_id))["events"]


@pytest.mark.gen_test(timeout=90)
async def test_resumes_racing_with_sends_leave_no_gap_and_no_duplicate(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    count = 240
    sender = Sender(alice, chat_id).start(count, pause_secs=0.002)
    resumed = []  # (listener, since)
    for since_of in (lambda n: 0, lambda n: n // 2, lambda n: n, lambda n: max(0, n - 1)):
        await sender.until(len(sender.sent) + 30, timeout=30)
        socket = await Listener.open(base_url, bob)
        since = since_of((await newest_seq(bob, chat_id))[0])
        ack, _ = await socket.resume(chat_id, since)
        assert ack["type"] == "ack" and ack["seq"] >= since, ack
        resumed.append((socket, since))
    sent = await sender.done()
    assert len(sent) == count
    for socket, since in resumed:
        await socket.wait_for_seq(chat_id, count + 1, timeout=30)
    await asyncio.sleep(GRACE_SECS)
    log = (await whole_log(bob, chat_id))["events"]
    for socket, since in resumed:
        assert_resumed(socket.of_chat(chat_id), since, count + 1)
        replayed = [e for e in socket.of_chat(chat_id) if e["seq"] > since]
        assert sorted(replayed, key=lambda e: e["seq"]) == log[since:]


@pytest.mark.gen_test(timeout=90)
async def test_ready_comes_first_even_while_the_users_chats_are_busy(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    settle_pubsub(sync_redis)
    sender = Sender(alice, chat_id).start(400, pause_secs=0.001)
    firsts = []
    try:
        for _ in range(25):
            connection = await open_socket(base_url, bob.cookies, ready=False)
            firsts.append(await next_event(connection))
            connection.close()
    finally:
        sender.stop()
        await sender.done()
    assert [e["type"] for e in firsts] == ["ready"] * len(firsts), [e for e in firsts if e["type"] != "ready"][:3]


# Members who come and go while messages flow.


@pytest.mark.gen_test(timeout=90)
async def test_a_member_added_mid_flow_gets_everything_from_their_member_added_on(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    socket = await Listener.open(base_url, bob, sync_redis)
    sender = Sender(alice, chat_id).start(150, pause_secs=0.002)
    await sender.until(50, timeout=30)
    await add_member(alice, chat_id, bob)
    await sender.done()
    newest, _ = await newest_seq(alice, chat_id)
    assert newest == 151
    await socket.wait_for_seq(chat_id, newest, timeout=30)
    await asyncio.sleep(GRACE_SECS)
    got = socket.of_chat(chat_id)
    assert {k: got[0][k] for k in ("type", "user_id")} == {"type": "member_added", "user_id": bob.user_id}, got[:3]
    joined = got[0]["seq"]
    assert 50 < joined < newest, "bob was not added while messages flowed: nothing tested"
    assert_contiguous([e["seq"] for e in got], joined, newest)
    assert got == (await whole_log(bob, chat_id, joined - 1))["events"]


@pytest.mark.gen_test(timeout=90)
async def test_a_removed_member_gets_nothing_after_their_member_removed(base_url, make_user, sync_redis):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    await add_member(alice, chat_id, carol)
    own_chat = await create_chat(bob, "bob's own")
    socket = await Listener.open(base_url, bob, sync_redis)
    sender = Sender(alice, chat_id).start(150, pause_secs=0.002)
    await sender.until(40, timeout=30)
    await remove(alice, chat_id, bob)
    await sender.until(80, timeout=30)
    assert len(sender.sent) < 150, "the flow ended before the removal: nothing tested"
    await sender.done()
    for n in range(20):  # and some more once the flow is over
        await send(carol, chat_id, f"after {n}")
    newest = 2 + 150 + 1 + 20
    await wait_for_log(carol, chat_id, newest)  # all published
    await send(bob, own_chat, "sentinel")
    await socket.wait_until(lambda: any(e.get("chat_id") == own_chat for e in socket.events), what="the sentinel")
    await asyncio.sleep(GRACE_SECS)

    got = socket.of_chat(chat_id)
    assert got[-1] == {
        "type": "member_removed", "chat_id": chat_id, "seq": got[-1]["seq"], "user_id": bob.user_id,
        "owner_id": alice.user_id,
    }, got[-3:]  # fmt: skip
    assert 40 < got[-1]["seq"] < newest
    assert_contiguous([e["seq"] for e in got], got[0]["seq"], got[-1]["seq"])
    assert_error(await events_since(bob, chat_id, 0), 403)
    error, _ = await socket.resume(chat_id, got[-1]["seq"])
    assert (error["type"], error["status"]) == ("error", 403), error
    await asyncio.sleep(0.2)
    assert socket.of_chat(chat_id) == got  # the refused resume replayed nothing


@pytest.mark.gen_test(timeout=60)
async def test_a_member_removed_and_added_again_gets_only_what_happened_while_in(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)  # 1
    socket = await Listener.open(base_url, bob, sync_redis)
    await send(alice, chat_id, "while in")  # 2
    await remove(alice, chat_id, bob)  # 3
    for n in range(3):
        await send(alice, chat_id, f"while out {n}")  # 4, 5, 6
    await add_member(alice, chat_id, bob)  # 7
    await send(alice, chat_id, "in again")  # 8
    await socket.wait_for_seq(chat_id, 8)
    await asyncio.sleep(GRACE_SECS)
    got = socket.of_chat(chat_id)
    assert [(e["seq"], e["type"]) for e in got] == [
        (2, "message"), (3, "member_removed"), (7, "member_added"), (8, "message"),
    ]  # fmt: skip
    assert got[-1]["message"]["content"] == "in again"
    log = (await whole_log(bob, chat_id))["events"]
    assert got == [log[1], log[2], log[6], log[7]]


@pytest.mark.gen_test(timeout=60)
async def test_a_resume_replays_to_the_socket_that_asked_only(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    for n in range(3):
        await send(alice, chat_id, f"before {n}")  # 2, 3, 4
    asking = await Listener.open(base_url, bob, sync_redis)
    other = await Listener.open(base_url, bob)
    ack, _ = await asking.resume(chat_id, 0)
    assert (ack["type"], ack["seq"]) == ("ack", 4)
    await send(alice, chat_id, "live")  # 5
    for socket in (asking, other):
        await socket.wait_for_seq(chat_id, 5)
    await asyncio.sleep(GRACE_SECS)
    assert asking.seqs(chat_id) == [1, 2, 3, 4, 5]
    assert other.seqs(chat_id) == [5]
