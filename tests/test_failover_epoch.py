"""No (epoch, seq) names two events after a failover (issue 14): a promoted
replica that lacks the newest events its master published goes on under a
new epoch, so that clients resuming with the old one get 410 and re-read."""

import asyncio
import time

import pytest

from server.app import make_redis, make_storage
from server.chat_streams import ChatStream, Event
from server.cluster_redis import LocalCluster
from server.fanout import SharedEvent
from server.settings import Settings
from storage import Gone, keys

from .api_helpers import assert_error, assert_ok, create_chat, send
from .processes import RunningServer, user_on
from .redis_clients import redis_mode, settle_pubsub, sync_client
from .replicated_redis import ReplicaPair, cut_off, node
from .wsclient import answer, go_live, next_event, open_socket

SETTLE_SECS = 10


@pytest.fixture
def pair(tmp_path):
    started = ReplicaPair(str(tmp_path / "pair"))
    started.start()
    yield started
    started.stop()


async def storage_on(url: str):
    settings = Settings(bcrypt_cost=4, rate_limits=False)
    client = make_redis(url, settings)
    storage = make_storage(client, settings)
    await storage.prepare()
    return storage, client


def wait_replica_seq(port: int, chat_id: int, seq: int) -> None:
    deadline = time.monotonic() + SETTLE_SECS
    while True:
        with node(port) as client:
            if int(client.hget(keys.chat_key(chat_id), "log_seq") or 0) == seq:
                return
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.02)


@pytest.mark.gen_test(timeout=60)
async def test_a_promoted_replica_that_lost_events_goes_on_under_a_new_epoch(pair):
    storage, client = await storage_on(pair.url)
    try:
        alice = await storage.users.register(f"a{time.time_ns()}", "a@example.org", "correct horse")
        chat_id = await storage.chats.create(alice, "failover")
        for n in range(3):
            await storage.messages.send(alice, chat_id, f"kept {n}")
        (replica,) = pair.replicas_of(pair.master)
        wait_replica_seq(replica, chat_id, 3)
        with cut_off(pair, replica):
            for n in range(2):  # acknowledged (no --redis-wait-replicas), published live: seq 4 and 5
                await storage.messages.send(alice, chat_id, f"lost {n}")
            seen = await storage.log.read(alice, chat_id, 0, 100)
            assert (seen.seq, len(seen.events)) == (5, 5)
            pair.kill(pair.master)
    finally:
        await storage.stop()
        await client.aclose()
    pair.promote(replica)

    storage, client = await storage_on(pair.url)
    try:
        # Before any write: the client that saw seq 5 is told the log cannot serve it.
        assert await storage.log.position(chat_id) == (3, seen.epoch)
        with pytest.raises(Gone):
            await storage.log.read(alice, chat_id, 5, 100, seen.epoch)
        await storage.messages.send(alice, chat_id, "after")
        seq, epoch = await storage.log.position(chat_id)
        assert seq == 4 and epoch != seen.epoch  # 4 again, but in another epoch
        for since in (5, 4, 3, 0):
            with pytest.raises(Gone):
                await storage.log.read(alice, chat_id, since, 100, seen.epoch)
            with pytest.raises(Gone):
                await storage.log.read_unchecked(chat_id, since, seen.epoch)  # the servers' own catch-up
        page = await storage.log.read(alice, chat_id, 0, 100, epoch)
        assert page.events[:3] == seen.events[:3]  # what survived is the same events under the new name
        assert '"content":"after"' in page.events[3] and '"seq":4' in page.events[3]
        summary = (await storage.chats.list_for(alice))[0]
        assert (summary["seq"], summary["epoch"]) == (4, epoch)
        await storage.messages.send(alice, chat_id, "and on")
        assert await storage.log.position(chat_id) == (5, epoch)  # one new epoch, not one per write
    finally:
        await storage.stop()
        await client.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_a_chat_last_written_without_a_replication_id_starts_a_new_epoch(storage, sync_redis):
    """The meaning of an absent `log_replid` (a chat written before it was
    recorded): nobody knows what its log lost, so its next event starts a new
    epoch. No migration needed."""
    alice = await storage.users.register(f"a{time.time_ns()}", "a@example.org", "correct horse")
    chat_id = await storage.chats.create(alice, "older layout")
    await storage.messages.send(alice, chat_id, "one")
    old = await storage.log.read(alice, chat_id, 0, 100)
    await storage.messages.send(alice, chat_id, "two")
    assert (await storage.log.position(chat_id))[1] == old.epoch  # same node, same life: same epoch
    sync_redis.hdel(keys.chat_key(chat_id), "log_replid")
    await storage.messages.send(alice, chat_id, "three")
    seq, epoch = await storage.log.position(chat_id)
    assert seq == 3 and epoch != old.epoch
    with pytest.raises(Gone):
        await storage.log.read(alice, chat_id, 2, 100, old.epoch)
    assert len((await storage.log.read(alice, chat_id, 0, 100, epoch)).events) == 3


def test_a_live_event_unlike_the_one_applied_under_its_seq_is_a_replacement():
    stream = ChatStream(7)
    for seq in (1, 2, 3):
        stream.seq = seq
        stream.recent.append(event(seq, f"m{seq}"))
    assert not stream.replaced(event(3, "m3"))  # the same event again (live after the log)
    assert not stream.replaced(event(2, "m2"))
    assert stream.replaced(event(2, "other"))  # seq 2 again, another event: a failover's new master
    stream.recent.clear()
    assert not stream.replaced(event(2, "other"))  # out of memory: nothing to compare


def event(seq: int, content: str) -> Event:
    text = f'{{"type":"message","chat_id":7,"seq":{seq},"message":{{"content":"{content}"}}}}'
    return Event(seq, SharedEvent(text.encode()), "message", None)


@pytest.mark.gen_test(timeout=180)
async def test_after_a_cluster_failover_sockets_resync_and_old_positions_get_410(tmp_path, http_client):
    """A real failover of a chat's master (LocalCluster, a replica each), the
    service running throughout: its sockets are told to re-read (`resync`),
    never handed the new seq 4 and 5 as if they followed the lost ones."""
    if redis_mode() != "cluster":
        pytest.skip("cluster mode: the service follows a real failover")
    cluster = LocalCluster(str(tmp_path / "cluster"), masters=3, replicas=1)
    cluster.start()
    server = RunningServer("--redis-url", cluster.url, "--data-dir", str(tmp_path / "data"), "--rate-limits", "off")
    try:
        alice = await user_on(http_client, server)
        home = cluster.master_of(keys.user_key(alice.user_id))
        while (victim := cluster.master_of(keys.chat_key(chat_id := await create_chat(alice)))) == home:
            pass  # her account and session stay on a master that lives
        for n in range(3):
            await send(alice, chat_id, f"kept {n}")
        (replica,) = cluster.replicas_of(victim)
        wait_replica_seq(replica, chat_id, 3)
        inspector = sync_client(cluster.url)
        settle_pubsub(inspector)  # the chat_created events above reach no socket opened after this
        inspector.close()
        socket = await open_socket(server.base, alice.cookies)
        with cut_off(cluster, replica):
            for n in range(2):
                await send(alice, chat_id, f"lost {n}")
            got = [await next_event(socket) for _ in range(2)]
            assert [e.get("seq") for e in got] == [4, 5], got  # delivered live
            old_epoch = (await alice.get(f"/api/chats/{chat_id}/events", params={"since": 0})).json()["epoch"]
            cluster.kill(victim)
        cluster.wait_until_ok(timeout_secs=cluster.node_timeout_ms / 1000 + 30)
        assert cluster.master_of(keys.chat_key(chat_id)) == replica

        # The process's own catch-up from seq 5 finds the log cannot serve it.
        while (event := await next_event(socket, timeout=30))["type"] != "resync":
            assert event["type"] != "message", event
        assert event == {"type": "resync", "chat_id": chat_id}
        deadline = time.monotonic() + 30
        while (response := await alice.post(f"/api/chats/{chat_id}", {"content": "after"})).code == 503:
            assert time.monotonic() < deadline  # the client may re-read the layout first
            await asyncio.sleep(0.2)
        assert_ok(response, 201)
        # Its first event starts the new epoch: the log_epoch notice resyncs
        # the socket again (the re-read above still showed the old epoch,
        # under which 4 was "lost 0"), then 4 comes.
        assert await next_event(socket) == {"type": "resync", "chat_id": chat_id}
        event = await next_event(socket)
        assert (event["type"], event["seq"], event["message"]["content"]) == ("message", 4, "after")
        page = (await alice.get(f"/api/chats/{chat_id}/events", params={"since": 0})).json()
        assert page["seq"] == 4 and page["epoch"] != old_epoch, page
        assert_error(await alice.get(f"/api/chats/{chat_id}/events", params={"since": 5, "epoch": old_epoch}), 410)
        assert_error(await alice.get(f"/api/chats/{chat_id}/events", params={"since": 3, "epoch": old_epoch}), 410)
        resumed = await answer(socket, {"op": "resume", "chat_id": chat_id, "since": 5, "epoch": old_epoch,
                                        "request_id": "r"})  # fmt: skip
        assert (resumed["type"], resumed["status"], resumed["chat_id"]) == ("error", 410, chat_id), resumed
        socket.close()
    finally:
        assert server.stop() == 0
        cluster.stop()


async def a_live_chat_at_seq_2(base_url, make_user):
    """(its user, a chat of two messages, their socket, live: no hold)."""
    alice = await make_user()
    chat_id = await create_chat(alice)
    for n in range(2):
        await send(alice, chat_id, f"kept {n}")
    socket = await open_socket(base_url, alice.cookies)
    await go_live(socket)
    return alice, chat_id, socket


@pytest.mark.gen_test(timeout=60)
async def test_a_new_epoch_is_announced_so_that_a_copy_ending_where_it_begins_resyncs(
    base_url, make_user, sync_redis
):  # fmt: skip
    """A process whose copy of the chat ends exactly where the new master's
    does (seq 2) cannot tell the new epoch's "3" from a lost one by its seq:
    the `log_epoch` notice that precedes it tells, so its sockets resync
    first; and the read cache's lists show the new epoch."""
    alice, chat_id, socket = await a_live_chat_at_seq_2(base_url, make_user)
    (listed,) = [c for c in (await alice.get("/api/chats")).json()["chats"] if c["id"] == chat_id]  # cached
    assert listed["seq"] == 2
    # As after a failover to a replica that had every event (or a restart of
    # the node): the chat's next event is numbered on another node's history.
    sync_redis.hset(keys.chat_key(chat_id), "log_replid", "0" * 40)
    await send(alice, chat_id, "first of the new epoch")
    assert await next_event(socket) == {"type": "resync", "chat_id": chat_id}
    event = await next_event(socket)
    assert (event["type"], event["seq"]) == ("message", 3)
    (listed_after,) = [c for c in (await alice.get("/api/chats")).json()["chats"] if c["id"] == chat_id]
    page = (await alice.get(f"/api/chats/{chat_id}/events", params={"since": 0})).json()
    assert (listed_after["seq"], listed_after["epoch"]) == (3, page["epoch"]) != (3, listed["epoch"])
    socket.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_resume_ack_never_names_a_seq_below_one_the_socket_has(base_url, make_user, sync_redis):
    """A failover's new master, before its first write, ends the log at seq 3
    while this process applied and holds 4 (published by the old master):
    the socket that resumes gets 4 after the replay, and the ack says 4."""
    alice = await make_user()
    chat_id = await create_chat(alice)
    for n in range(4):
        await send(alice, chat_id, f"m{n}")
    keeper = await open_socket(base_url, alice.cookies)  # keeps the process's copy of the chat
    await go_live(keeper)
    await send(alice, chat_id, "published, then lost")  # seq 5
    assert (await next_event(keeper))["seq"] == 5
    epoch = (await alice.get(f"/api/chats/{chat_id}/events", params={"since": 0})).json()["epoch"]
    # The new master's copy: without event 5 (same epoch until its first write).
    sync_redis.xdel(keys.chat_log_key(chat_id), "5-0")
    sync_redis.hset(keys.chat_key(chat_id), "log_seq", 4)
    socket = await open_socket(base_url, alice.cookies)
    ack = await answer(socket, {"op": "resume", "chat_id": chat_id, "since": 3, "epoch": epoch, "request_id": "r"})
    assert (ack["type"], ack["seq"], ack["epoch"]) == ("ack", 5, epoch), ack
    keeper.close()
    socket.close()


@pytest.mark.gen_test(timeout=60)
async def test_an_event_held_for_a_resume_that_a_new_epoch_lost_is_never_delivered(
    base_url, make_user, sync_redis
):  # fmt: skip
    """A socket's resume hold keeps seq 3 from the old master when the new
    epoch begins after 2: the socket gets `resync`, then the new epoch's 3,
    never the lost one."""
    alice = await make_user()
    chat_id = await create_chat(alice)
    for n in range(2):
        await send(alice, chat_id, f"kept {n}")
    socket = await open_socket(base_url, alice.cookies)  # no resume yet: its chat is held
    await send(alice, chat_id, "published, then lost")  # seq 3, held
    await asyncio.sleep(0.3)
    sync_redis.xdel(keys.chat_log_key(chat_id), "3-0")  # the new master's copy ends at 2
    sync_redis.execute_command("XSETID", keys.chat_log_key(chat_id), "2-0")
    sync_redis.hset(keys.chat_key(chat_id), mapping={"log_seq": 2, "log_replid": "0" * 40})
    await send(alice, chat_id, "first of the new epoch")
    assert await next_event(socket) == {"type": "resync", "chat_id": chat_id}
    event = await next_event(socket)
    assert (event["type"], event["seq"], event["message"]["content"]) == ("message", 3, "first of the new epoch")
    socket.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_notice_of_an_epoch_beginning_past_this_copy_changes_nothing_here(
    base_url, make_user, sync_redis
):  # fmt: skip
    """A `log_epoch` notice whose epoch begins after seq 5 reaches a process at
    seq 2 (a late one from an earlier life of the chat id, after a FLUSHALL
    in the tests; or a copy that lags): ignored, the live events go on."""
    alice, chat_id, socket = await a_live_chat_at_seq_2(base_url, make_user)
    notice = f'{{"type":"log_epoch","chat_id":{chat_id},"epoch":"elsewhere","after":5}}'
    if redis_mode() == "cluster":
        sync_redis.execute_command("SPUBLISH", keys.chat_events_channel(chat_id), notice)
    else:
        sync_redis.publish(keys.chat_events_channel(chat_id), notice)
    await send(alice, chat_id, "goes on")
    event = await next_event(socket)
    assert (event["type"], event["seq"], event["message"]["content"]) == ("message", 3, "goes on")
    socket.close()
