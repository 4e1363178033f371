"""Cluster mode end to end (CHAT_TEST_REDIS=cluster): data spread over three
masters is served whole, live events and logouts cross `run.py` processes,
and a dead master is a JSON 503 within the deadline, never a 500."""

import asyncio
import time

import pytest
import redis

from server.cluster_redis import LocalCluster
from storage import keys

from .api_helpers import add_member, create_chat, send
from .apiclient import ApiClient
from .processes import RunningServer, user_on
from .redis_clients import nodes_of, redis_mode, settle_pubsub, sync_client
from .wsclient import closed, next_event, open_socket

pytestmark = pytest.mark.skipif(
    redis_mode() != "cluster", reason="tests of Redis Cluster behaviour: run the suite with CHAT_TEST_REDIS=cluster"
)

MASTERS = 3
TRIES = 60  # sequential ids hash onto all three masters long before this
TIMEOUT_SECS = 1.0  # --redis-timeout-secs of the server whose master dies
MARGIN_SECS = 3.0  # a loaded 2-core machine; a hang would take far longer
NODE_TIMEOUT_MS = 2000  # the dedicated cluster declares a dead master failed after this
UNAVAILABLE = {"error": "storage is unavailable, try again shortly"}


def master_of(client, key: str) -> int:
    """Port of the master serving `key`'s slot."""
    return client.get_node_from_key(key).port




async def users_on_distinct_masters(http_client, server, inspector, count: int) -> list[ApiClient]:
    """`count` new users whose records are on `count` different masters."""
    found: dict[int, ApiClient] = {}
    for _ in range(TRIES):
        user = await user_on(http_client, server)
        found.setdefault(master_of(inspector, keys.user_key(user.user_id)), user)
        if len(found) == count:
            return list(found.values())
    raise AssertionError(f"users landed on only {len(found)} masters")


async def chats_on_every_master(owner, inspector, *members) -> dict[int, list[int]]:
    """New chats of `owner` (with `members`, one message each) until every
    master holds one: port of each master -> the chats it holds."""
    found: dict[int, list[int]] = {}
    for attempt in range(TRIES):
        chat_id = await create_chat(owner, f"room {attempt}")
        for member in members:
            await add_member(owner, chat_id, member)
        await send(owner, chat_id, f"hello {chat_id}")
        found.setdefault(master_of(inspector, keys.chat_key(chat_id)), []).append(chat_id)
        if len(found) == MASTERS:
            return found
    raise AssertionError(f"chats landed on only {len(found)} masters")


def test_the_test_client_looks_at_every_master(sync_redis):
    written: dict[str, int] = {}
    for n in range(TRIES):
        written[f"probe:{{{n}}}"] = master_of(sync_redis, f"probe:{{{n}}}")
        sync_redis.set(f"probe:{{{n}}}", n)
        if len(set(written.values())) == MASTERS:
            break
    assert len(set(written.values())) == MASTERS
    assert sorted(sync_redis.keys("probe:*")) == sorted(written)
    assert sorted(sync_redis.scan_iter("probe:*")) == sorted(written)
    assert all(node.dbsize() > 0 for node in nodes_of(sync_redis))
    sync_redis.flushall()
    assert [node.dbsize() for node in nodes_of(sync_redis)] == [0] * MASTERS


@pytest.mark.gen_test(timeout=60)
async def test_chats_held_by_every_master_are_all_listed(make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chats = await chats_on_every_master(alice, sync_redis, bob)
    created = sorted(chat_id for held in chats.values() for chat_id in held)
    for node in nodes_of(sync_redis):
        assert node.keys("chat:*"), "a master holds no chat"
    for user in (alice, bob):
        response = await user.get("/api/chats")
        assert response.code == 200, response
        listed = response.json()["chats"]
        assert sorted(chat["id"] for chat in listed) == created
        assert all(chat["last_message"] == f"hello {chat['id']}" for chat in listed)




@pytest.mark.gen_test(timeout=90)
async def test_a_message_reaches_a_member_socket_on_the_other_process(two_servers, http_client, sync_redis):
    first, second = two_servers
    alice, bob = await users_on_distinct_masters(http_client, first, sync_redis, 2)
    homes = {master_of(sync_redis, keys.user_key(user.user_id)) for user in (alice, bob)}
    for attempt in range(TRIES):  # a chat on the third master: each party of the exchange on its own node
        chat_id = await create_chat(alice, f"across {attempt}")
        if master_of(sync_redis, keys.chat_key(chat_id)) not in homes:
            break
    else:
        raise AssertionError("no chat landed on the third master")
    await add_member(alice, chat_id, bob)
    settle_pubsub(sync_redis)  # the setup's events have reached every node: none comes after `ready`
    bob_socket = await open_socket(second.base, bob.cookies)
    alice_socket = await open_socket(second.base, alice.cookies)

    message_id = await send(alice, chat_id, "from the first process")  # alice's requests go to the first
    for socket in (bob_socket, alice_socket):
        event = await next_event(socket)
        assert event["chat_id"] == chat_id and event["message"]["id"] == message_id
        assert event["message"]["content"] == "from the first process"

    bob_there = ApiClient(http_client, second.base)
    bob_there.cookies = dict(bob.cookies)
    settle_pubsub(sync_redis)
    alice_socket_on_first = await open_socket(first.base, alice.cookies)
    reply_id = await send(bob_there, chat_id, "back from the second")
    assert (await next_event(alice_socket_on_first))["message"]["id"] == reply_id


@pytest.mark.gen_test(timeout=90)
async def test_a_logout_on_one_process_ends_the_session_on_the_other(two_servers, http_client):
    first, second = two_servers
    alice = await user_on(http_client, first)
    alice_there = ApiClient(http_client, second.base)
    alice_there.cookies = dict(alice.cookies)
    assert (await alice_there.get("/api/chats")).code == 200  # the second process now knows the session
    socket = await open_socket(second.base, alice.cookies)
    assert (await alice.get("/api/logout")).code == 200
    assert await closed(socket) == 4001
    refused = await alice_there.get("/api/chats")
    assert refused.code == 401 and refused.json()["error"].startswith("authentication required"), refused


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of this test's own, whose masters it may kill."""
    cluster = LocalCluster(str(tmp_path / "cluster"), node_timeout_ms=NODE_TIMEOUT_MS)
    cluster.start()
    yield cluster
    cluster.stop()


def cluster_state(port: int) -> str:
    try:
        with sync_client(f"redis://127.0.0.1:{port}", socket_timeout=2) as node:
            return node.execute_command("CLUSTER INFO")["cluster_state"]
    except redis.exceptions.RedisError:
        return "unreachable"


async def timed(request) -> tuple:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def assert_unavailable(request, cached: dict | None = None) -> None:
    """A prompt JSON 503; or, given `cached`, exactly that answer (the process's
    read cache: a cluster that refuses every write changes nothing)."""
    response, took = await timed(request)
    if not (cached is not None and response.code == 200 and response.json() == cached):
        assert response.code == 503 and response.json() == UNAVAILABLE, response
    assert took < TIMEOUT_SECS + MARGIN_SECS, took


async def assert_served_while_cluster_ok(get, path: str, survivors: list[int]) -> dict | None:
    """A GET of `path` answers 200 within a few tries (its body returned), unless
    the survivors have meanwhile stopped calling the cluster ok (then 503 is right)."""
    for _ in range(5):
        response, took = await timed(get(path))
        assert took < TIMEOUT_SECS + MARGIN_SECS, took
        if response.code == 200:
            return response.json()
        assert response.code == 503 and response.json() == UNAVAILABLE, response
    assert any(cluster_state(port) != "ok" for port in survivors), "a live master's slots are not served"
    return None


@pytest.mark.gen_test(timeout=120)
async def test_a_dead_master_is_a_prompt_json_503_never_a_500(own_cluster, tmp_path, http_client):
    server = RunningServer(
        "--redis-url", own_cluster.url, "--data-dir", str(tmp_path / "data"), "--rate-limits", "off",
        "--redis-timeout-secs", str(TIMEOUT_SECS),
    )  # fmt: skip
    try:
        with sync_client(own_cluster.url) as inspector:
            alice = await user_on(http_client, server)
            home = master_of(inspector, keys.user_key(alice.user_id))  # her session lives there
            chats = {port: held[0] for port, held in (await chats_on_every_master(alice, inspector)).items()}
        victim = next(port for port in chats if port != home)
        survivors = [port for port in own_cluster.ports if port != victim]
        dead = own_cluster.processes[own_cluster.ports.index(victim)]
        dead.kill()
        dead.wait()

        # The dead master's slots: refused at once, a 503 and never a 500.
        await assert_unavailable(alice.get(f"/api/chats/{chats[victim]}"))
        await assert_unavailable(alice.post(f"/api/chats/{chats[victim]}", {"content": "lost?"}))
        await assert_unavailable(alice.get("/api/chats"))  # a listing without that master's chats would lie

        # The others' slots answer as long as the survivors think the cluster
        # whole (the first try may be a 503: the client re-reads the layout).
        served = await assert_served_while_cluster_ok(alice.get, f"/api/chats/{chats[home]}", survivors)

        # Once they agree the master failed, the whole cluster refuses (every slot must be covered).
        deadline = time.monotonic() + NODE_TIMEOUT_MS / 1000 + 30
        while any(cluster_state(port) != "fail" for port in survivors):
            assert time.monotonic() < deadline, "the survivors never marked the cluster failed"
            await asyncio.sleep(0.1)
        await assert_unavailable(alice.get(f"/api/chats/{chats[home]}"), cached=served)
        await assert_unavailable(alice.post(f"/api/chats/{chats[home]}", {"content": "down"}))
        await assert_unavailable(alice.get(f"/api/chats/{chats[victim]}"))
    finally:
        assert server.stop() == 0
