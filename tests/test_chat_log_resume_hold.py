"""A reconnecting socket's resume hold (docs/live-events.md, "Catching up"):
after `ready`, a chat's live events wait for the client's `resume` of that
chat, so that an event that happens between `ready` and the resume cannot
overtake the older ones the resume replays. The hold ends at the chat's
resume, at the socket's first other request, or after a second."""

import asyncio
import dataclasses
import time

import pytest

from server.hub import RESUME_HOLD_SECS

from .api_helpers import add_member, create_chat, send
from .logclient import GRACE_SECS, Listener, assert_contiguous, remove, whole_log

# Long enough for a live event to reach the socket had it not been held.
DELIVERY_SECS = 0.3
PENDING_LIMIT = 64 * 1024  # --ws-max-pending-bytes here: a chat holds at most a quarter of it


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, ws_max_pending_bytes=PENDING_LIMIT)


async def a_chat_seen_up_to(alice, bob, messages: int) -> tuple[int, int, str]:
    """A chat of alice's with bob in it and some messages: (chat id, the seq
    bob's client last saw, epoch)."""
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    for n in range(messages):
        await send(alice, chat_id, f"seen {n}")
    log = await whole_log(bob, chat_id)
    return chat_id, log["seq"], log["epoch"]


async def removed_and_added_back(alice, chat_id: int, bob) -> None:
    """Three events: bob's removal, a message while he is out (not his), his new add."""
    await remove(alice, chat_id, bob)
    await send(alice, chat_id, "while out")
    await add_member(alice, chat_id, bob)


@pytest.mark.gen_test(timeout=60)
async def test_an_event_between_ready_and_resume_comes_after_the_replay(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id, seen, epoch = await a_chat_seen_up_to(alice, bob, 2)
    await send(alice, chat_id, "while away")  # seen + 1: bob's client missed it
    socket = await Listener.open(base_url, bob, sync_redis)
    await send(alice, chat_id, "after ready")  # seen + 2, live, before the client resumes
    await asyncio.sleep(DELIVERY_SECS)
    assert socket.of_chat(chat_id) == [], "held until the resume"

    ack, _ = await socket.resume(chat_id, seen, epoch)
    assert (ack["type"], ack["seq"]) == ("ack", seen + 2), ack
    await asyncio.sleep(GRACE_SECS)
    got = socket.of_chat(chat_id)
    assert [e["seq"] for e in got] == [seen + 1, seen + 2]
    assert [e["message"]["content"] for e in got] == ["while away", "after ready"]
    assert socket.events.index(got[-1]) < socket.events.index(ack), "the replay comes before the ack"

    await send(alice, chat_id, "live")  # the hold is over: live events flow at once
    await socket.wait_for_seq(chat_id, seen + 3, timeout=DELIVERY_SECS * 3)


@pytest.mark.gen_test(timeout=60)
async def test_a_client_that_does_not_resume_gets_the_held_events_after_a_second(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id, seen, _ = await a_chat_seen_up_to(alice, bob, 1)
    socket = await Listener.open(base_url, bob, sync_redis)
    opened = time.monotonic()
    await send(alice, chat_id, "live 1")
    await send(alice, chat_id, "live 2")
    await socket.wait_for_seq(chat_id, seen + 2, timeout=RESUME_HOLD_SECS + 5)
    assert time.monotonic() - opened >= RESUME_HOLD_SECS - 0.1, "held for about a second"
    await asyncio.sleep(GRACE_SECS)
    assert socket.seqs(chat_id) == [seen + 1, seen + 2]


@pytest.mark.gen_test(timeout=60)
async def test_any_other_request_ends_the_hold_at_once(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id, seen, _ = await a_chat_seen_up_to(alice, bob, 1)
    socket = await Listener.open(base_url, bob, sync_redis)
    await send(alice, chat_id, "held")
    await asyncio.sleep(DELIVERY_SECS)
    assert socket.of_chat(chat_id) == []

    socket.write({"op": "watch_presence", "user_ids": [], "request_id": "w"})
    ack = await socket.reply("w", timeout=RESUME_HOLD_SECS / 2)
    held = socket.of_chat(chat_id)
    assert [e["seq"] for e in held] == [seen + 1]
    assert socket.events.index(held[0]) < socket.events.index(ack), "released as the request came in"


@pytest.mark.parametrize("resumes", [True, False])
@pytest.mark.gen_test(timeout=60)
async def test_a_flood_past_what_a_chat_may_hold_is_read_from_the_log_in_order(
    base_url, make_user, sync_redis, resumes
):  # fmt: skip
    """More than a chat may hold waits in the log, not in memory: the resume
    (or, for a client that does not resume, the end of the hold) reads it."""
    alice, bob = await make_user(), await make_user()
    chat_id, seen, epoch = await a_chat_seen_up_to(alice, bob, 1)
    await send(alice, chat_id, "while away")
    socket = await Listener.open(base_url, bob, sync_redis)
    content = "x" * 4000
    floods = PENDING_LIMIT // 4 // len(content) * 2  # twice what the chat may hold
    for _ in range(floods):
        await send(alice, chat_id, content)
    newest = seen + 1 + floods
    if resumes:
        ack, _ = await socket.resume(chat_id, seen, epoch)
        assert (ack["type"], ack["seq"]) == ("ack", newest), ack
    await send(alice, chat_id, "after")  # live once the hold is over
    await socket.wait_for_seq(chat_id, newest + 1, timeout=RESUME_HOLD_SECS + 5)
    await asyncio.sleep(GRACE_SECS)
    expected = range(seen + 1, newest + 2) if resumes else range(seen + 2, newest + 2)
    assert socket.seqs(chat_id) == list(expected)


@pytest.mark.gen_test(timeout=60)
async def test_a_resume_releases_only_its_own_chat(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    first, first_seen, epoch = await a_chat_seen_up_to(alice, bob, 1)
    second, second_seen, _ = await a_chat_seen_up_to(alice, bob, 1)
    socket = await Listener.open(base_url, bob, sync_redis)
    await send(alice, first, "first")
    await send(alice, second, "second")
    opened = time.monotonic()
    ack, _ = await socket.resume(first, first_seen, epoch)
    assert ack["seq"] == first_seen + 1
    if time.monotonic() - opened < RESUME_HOLD_SECS / 2:  # (a slow machine may have reached the second's end)
        assert socket.of_chat(second) == [], "the other chat still waits for its resume"
    assert socket.seqs(first) == [first_seen + 1]
    await socket.wait_for_seq(second, second_seen + 1, timeout=RESUME_HOLD_SECS + 5)
    await asyncio.sleep(GRACE_SECS)
    assert socket.seqs(second) == [second_seen + 1]


@pytest.mark.gen_test(timeout=60)
async def test_events_held_across_a_removal_and_a_new_add_keep_the_new_membership(
    base_url, make_user, sync_redis
):  # fmt: skip
    alice, bob = await make_user(), await make_user()
    chat_id, seen, _ = await a_chat_seen_up_to(alice, bob, 0)
    socket = await Listener.open(base_url, bob, sync_redis)
    await removed_and_added_back(alice, chat_id, bob)  # seen + 1 (held) .. seen + 3
    await send(alice, chat_id, "in again")  # seen + 4
    await socket.wait_for_seq(chat_id, seen + 4, timeout=RESUME_HOLD_SECS + 5)
    await asyncio.sleep(GRACE_SECS)
    assert [(e["seq"], e["type"]) for e in socket.of_chat(chat_id)] == [
        (seen + 1, "member_removed"), (seen + 3, "member_added"), (seen + 4, "message"),
    ]  # fmt: skip
    await send(alice, chat_id, "live")
    await socket.wait_for_seq(chat_id, seen + 5)


@pytest.mark.gen_test(timeout=60)
async def test_a_resume_that_replays_a_removal_and_a_new_add_keeps_the_new_membership(
    base_url, make_user, sync_redis
):  # fmt: skip
    alice, bob = await make_user(), await make_user()
    chat_id, seen, epoch = await a_chat_seen_up_to(alice, bob, 1)
    # While bob's client was away: he was removed and added back.
    await send(alice, chat_id, "before")  # seen + 1
    await removed_and_added_back(alice, chat_id, bob)  # seen + 2 .. seen + 4
    socket = await Listener.open(base_url, bob, sync_redis)
    await send(alice, chat_id, "after ready")  # seen + 5, held

    ack, _ = await socket.resume(chat_id, seen, epoch)
    assert (ack["type"], ack["seq"]) == ("ack", seen + 5), ack
    await send(alice, chat_id, "live")  # seen + 6
    await socket.wait_for_seq(chat_id, seen + 6)
    await asyncio.sleep(GRACE_SECS)
    assert [(e["seq"], e["type"]) for e in socket.of_chat(chat_id)] == [
        (seen + 1, "message"), (seen + 2, "member_removed"), (seen + 4, "member_added"),
        (seen + 5, "message"), (seen + 6, "message"),
    ]  # fmt: skip


@pytest.mark.gen_test(timeout=90)
async def test_events_racing_a_reconnect_arrive_in_order_once(base_url, make_user, sync_redis):
    """A sender keeps writing while bob's client reconnects and resumes: every
    event once, in seq order, across the reconnect."""
    alice, bob = await make_user(), await make_user()
    chat_id, seen, epoch = await a_chat_seen_up_to(alice, bob, 1)
    first_seen = seen
    sending = True

    async def keep_sending():
        n = 0
        while sending:
            await send(alice, chat_id, f"burst {n}")
            n += 1

    sender = asyncio.ensure_future(keep_sending())
    got: list[dict] = []
    try:
        for _ in range(3):
            socket = await Listener.open(base_url, bob)
            await asyncio.sleep(DELIVERY_SECS)  # live events come meanwhile
            ack, _ = await socket.resume(chat_id, seen, epoch)
            assert ack["type"] == "ack", ack
            await asyncio.sleep(DELIVERY_SECS)
            socket.close()
            events = socket.of_chat(chat_id)
            assert events, "the burst went on"
            assert_contiguous([e["seq"] for e in events], seen + 1, events[-1]["seq"])
            got += events
            seen = events[-1]["seq"]
    finally:
        sending = False
        await sender
    log = await whole_log(bob, chat_id)
    assert got == [e for e in log["events"] if first_seen < e["seq"] <= seen]
