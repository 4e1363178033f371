"""--redis-wait-replicas N: a write the API acknowledges is on N replicas,
or it is a 503 (issue 14). Against a real master with a real replica (in
cluster mode: three masters, a replica each)."""

import asyncio
import contextlib
import json
import time

import pytest
import redis.asyncio.connection

from server.app import make_redis, make_storage
from server.settings import Settings
from storage import keys

from .api_helpers import assert_ok, create_chat, history, send
from .replicated_redis import node, replicated_redis, stopped, wait_link_up
from .wsclient import answer, open_socket

UNAVAILABLE = {"error": "storage is unavailable, try again shortly"}
TIMEOUT_SECS = 1.0  # the requests' deadline here: a missing replica costs at most this
MARGIN_SECS = 1.0


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    started = replicated_redis(str(tmp_path_factory.mktemp("replicated")))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def redis_url(replicated):
    """The app of these tests runs on the replicated Redis (overrides conftest's)."""
    return replicated.url


@pytest.fixture
def settings(redis_url):
    return Settings(
        bcrypt_cost=4, rate_limits=False, redis_url=redis_url, redis_wait_replicas=1, redis_timeout_secs=TIMEOUT_SECS
    )


def replica_of_chat(replicated, chat_id: int) -> int:
    (replica,) = replicated.replicas_of(replicated.master_of(keys.chat_key(chat_id)))
    return replica


def contents_on(port: int, chat_id: int) -> list[str]:
    with node(port) as client:
        return [json.loads(m)["content"] for m in client.zrange(keys.chat_messages_key(chat_id), 0, -1)]


@pytest.mark.gen_test(timeout=60)
async def test_an_acknowledged_send_is_on_the_replica_at_once(replicated, make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "kept")
    # Read straight after the 201, from the replica itself: no retry, no wait.
    assert contents_on(replica_of_chat(replicated, chat_id), chat_id) == ["kept"]


@pytest.mark.gen_test(timeout=60)
async def test_a_send_the_replica_cannot_confirm_is_a_prompt_503_and_its_retry_stores_it_once(
    replicated, make_user
):  # fmt: skip
    alice = await make_user()
    chat_id = await create_chat(alice)
    replica = replica_of_chat(replicated, chat_id)
    headers = {"Idempotency-Key": "send-1"}
    with stopped(replicated, replica):
        started = time.monotonic()
        response = await alice.post(f"/api/chats/{chat_id}", {"content": "once"}, headers=headers)
        took = time.monotonic() - started
        assert (response.code, response.json()) == (503, UNAVAILABLE), response
        assert took < TIMEOUT_SECS + MARGIN_SECS, took
    wait_link_up(replica)
    retry = await alice.post(f"/api/chats/{chat_id}", {"content": "once"}, headers=headers)
    assert_ok(retry, 201)
    assert retry.headers.get("Idempotent-Replayed") == "true"  # the master had stored it
    assert [m["content"] for m in await history(alice, chat_id)] == ["once"]
    assert contents_on(replica, chat_id) == ["once"]


@pytest.mark.gen_test(timeout=60)
async def test_on_a_cluster_only_writes_to_the_master_of_the_stopped_replica_wait_in_vain(replicated, make_user):
    """WAIT goes to the node (and connection) that ran the write: with one
    master's replica stopped, a chat on another master is served as usual."""
    if len(replicated.master_ports()) < 2:
        pytest.skip("one master: cluster mode only")
    alice = await make_user()
    chat_ids = {}
    while len(chat_ids) < 2:
        chat_id = await create_chat(alice)
        chat_ids.setdefault(replicated.master_of(keys.chat_key(chat_id)), chat_id)
    (here, there) = chat_ids.values()
    with stopped(replicated, replica_of_chat(replicated, here)):
        for attempt in range(3):
            refused = await alice.post(f"/api/chats/{here}", {"content": f"no {attempt}"})
            assert (refused.code, refused.json()) == (503, UNAVAILABLE), refused
            await send(alice, there, f"yes {attempt}")
    assert contents_on(replica_of_chat(replicated, there), there) == ["yes 0", "yes 1", "yes 2"]


@pytest.mark.gen_test(timeout=60)
async def test_a_socket_send_the_replica_cannot_confirm_is_a_503_error_event(replicated, make_user, base_url):
    alice = await make_user()
    chat_id = await create_chat(alice)
    replica = replica_of_chat(replicated, chat_id)
    socket = await open_socket(base_url, alice.cookies)
    frame = {"op": "send", "chat_id": chat_id, "content": "socket", "request_id": "r1", "idempotency_key": "k1"}
    with stopped(replicated, replica):
        error = await answer(socket, frame)
    assert (error["type"], error["status"], error["request_id"]) == ("error", 503, "r1"), error
    wait_link_up(replica)
    ack = await answer(socket, frame)
    assert (ack["type"], ack.get("replayed")) == ("ack", True), ack
    assert contents_on(replica, chat_id) == ["socket"]
    socket.close()


def wait_calls(replicated) -> dict[int, int]:
    """Master port -> WAIT commands it ran since its statistics were reset."""
    calls = {}
    for port in replicated.master_ports():
        with node(port) as client:
            calls[port] = int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
    return calls


def reset_stats(replicated) -> None:
    for port in replicated.master_ports():
        with node(port) as client:
            client.config_resetstat()


@contextlib.asynccontextmanager
async def storage_waiting_for(replicated, replicas: int):
    """A storage on the replicated Redis with --redis-wait-replicas `replicas`."""
    settings = Settings(bcrypt_cost=4, rate_limits=False, redis_url=replicated.url, redis_wait_replicas=replicas)
    client = make_redis(replicated.url, settings)
    storage = make_storage(client, settings)
    try:
        await storage.prepare()
        yield storage
    finally:
        await storage.stop()
        await client.aclose()


@pytest.mark.parametrize("replicas", [0, 1])
@pytest.mark.gen_test(timeout=60)
async def test_wait_runs_once_per_write_on_the_writes_node_and_never_with_zero(replicated, sync_redis, replicas):
    async with storage_waiting_for(replicated, replicas) as storage:
        user_id = await storage.users.register("w" + str(time.time_ns()), "w@example.org", "correct horse")
        chat_id = await storage.chats.create(user_id, "waited")
        reset_stats(replicated)
        sent = await storage.messages.send(user_id, chat_id, "one")
        await storage.chats.mark_read(user_id, chat_id, sent.message_id)
        await storage.chats.typing(user_id, chat_id)  # not waited for: nothing lasting
        calls = wait_calls(replicated)
        home = replicated.master_of(keys.chat_key(chat_id))
        assert calls == {port: 2 * replicas if port == home else 0 for port in calls}, calls


@pytest.mark.gen_test(timeout=60)
async def test_wait_travels_with_its_write_on_one_connection(replicated, sync_redis, monkeypatch):
    """What WAIT counts is its own connection's writes: each WAIT must be sent
    in the same packet as the write it confirms (a WAIT on any other
    connection would count a stopped replica that had all *that* connection wrote)."""
    sent: list[bytes] = []
    original = redis.asyncio.connection.Connection.send_packed_command

    async def recording(self, command, check_health=True):
        parts = [command] if isinstance(command, (bytes, str)) else list(command)
        sent.append(b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in parts))
        return await original(self, command, check_health)

    monkeypatch.setattr(redis.asyncio.connection.Connection, "send_packed_command", recording)
    async with storage_waiting_for(replicated, 1) as storage:
        user_id = await storage.users.register("c" + str(time.time_ns()), "c@example.org", "correct horse")
        chat_id = await storage.chats.create(user_id, "together")
        sent.clear()
        await asyncio.gather(*(storage.messages.send(user_id, chat_id, f"m{n}") for n in range(10)))
        waits = [packet for packet in sent if b"\r\nWAIT\r\n" in packet]
        assert len(waits) == 10
        assert all(packet.count(b"\r\nEVALSHA\r\n") == 1 for packet in waits), waits


def test_the_setting_is_checked_at_start():
    with pytest.raises(ValueError, match="redis_wait_replicas must be 0 or more"):
        Settings(redis_wait_replicas=-1)
    with pytest.raises(ValueError, match="the embedded one has none"):
        Settings(redis_wait_replicas=1)
    assert Settings(redis_wait_replicas=2, redis_url="redis://127.0.0.1:6379").redis_wait_replicas == 2


@pytest.mark.gen_test(timeout=30)
async def test_a_replica_that_stays_away_costs_each_write_no_more_than_its_deadline(replicated, make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    replica = replica_of_chat(replicated, chat_id)
    with stopped(replicated, replica):
        started = time.monotonic()
        answers = await asyncio.gather(*(alice.post(f"/api/chats/{chat_id}", {"content": f"{n}"}) for n in range(5)))
        took = time.monotonic() - started
    assert [a.code for a in answers] == [503] * 5
    assert took < TIMEOUT_SECS + MARGIN_SECS, took  # waited side by side, not one after another
    wait_link_up(replica)
