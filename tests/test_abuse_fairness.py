"""The abuse tier, fair sharing (docs/limits.md): one user's load leaves the
others served. Each attack scaled down to hundreds of connections, with low
caps set by flags: a fan-out to many local sockets, one user's requests
filling the Redis pool, logins queueing for bcrypt, successful logins in a
loop, and adds from strangers."""

import asyncio
import dataclasses
import json

import pytest
import requests
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from server.hub import Hub
from storage import Busy, keys
from storage.fair_share import FairShare

from .api_helpers import assert_error, assert_ok, chat_with, create_chat, send
from .apiclient import ApiClient
from .processes import RunningServer
from .wsclient import go_live, next_event, open_socket

PASSWORD = "correct horse"
SLICE = 10  # sockets per fan-out slice here: a few hundred sockets make many slices


@pytest.fixture
def settings(settings, request):
    marker = request.node.get_closest_marker("limits")
    return dataclasses.replace(settings, **(marker.kwargs if marker else {}))


@pytest.fixture
def hub(io_loop, storage):
    hub = Hub(storage, fanout_slice_sockets=SLICE)
    yield hub
    hub.close_all()
    io_loop.run_sync(hub.stop)


def assert_retry_later(response, status: int) -> int:
    """A JSON refusal with a whole number of seconds in Retry-After; returns it."""
    assert_error(response, status)
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


# Fan-out.


@pytest.mark.limits(ws_per_user=400)  # one user's 300 sockets: past the default cap (50)
@pytest.mark.gen_test(timeout=120)
async def test_a_fan_out_to_hundreds_of_sockets_is_sliced_in_order_and_others_are_served(
    base_url, make_user, hub
):  # fmt: skip
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice)
    sockets = []
    for _ in range(30):  # 300 sockets, 10 at a time
        sockets += await asyncio.gather(*(open_socket(base_url, alice.cookies) for _ in range(10)))
    await asyncio.gather(*(go_live(socket) for socket in sockets))
    # Each escaped to about 16 kB of JSON, just under --content-max-bytes.
    contents = [f"{index:02d} " + "\x01" * 2700 for index in range(12)]

    answered_meanwhile = []  # bob's answers that came while the fan-out still had writes queued
    statuses = []
    sending = True

    async def bob_reads():
        while sending or hub.fanout.waiting:
            response = await bob.get("/api/chats")
            statuses.append(response.code)
            answered_meanwhile.append(hub.fanout.waiting > 0)

    reader = asyncio.ensure_future(bob_reads())
    for content in contents:
        await send(alice, chat_id, content)
    sending = False

    async def events_of(socket):
        messages = []
        while len(messages) < len(contents):
            event = await next_event(socket, timeout=30)
            if event["type"] == "message":
                messages.append(event)
        return messages

    received = await asyncio.gather(*(events_of(socket) for socket in sockets))
    await reader
    for events in received:  # every event once, in order, on every socket
        assert [e["message"]["content"] for e in events] == contents
        assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + len(contents)))
    assert statuses and set(statuses) == {200}
    # The loop was not held: bob was answered while the fan-out was under way.
    assert any(answered_meanwhile), answered_meanwhile
    for socket in sockets:
        socket.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_resume_answers_after_its_replayed_events_even_behind_a_fan_out(base_url, make_user, hub):
    alice = await make_user()
    chat_id = await chat_with(alice)
    for index in range(5):
        await send(alice, chat_id, f"before {index}")
    busy = await asyncio.gather(*(open_socket(base_url, alice.cookies) for _ in range(40)))
    resumer = await open_socket(base_url, alice.cookies)
    # Resumed right after `ready` (what the API promises every event once and
    # in order for), while live events for 41 sockets, 10 per slice, are
    # being written.
    resumer.write_message(json.dumps({"op": "resume", "chat_id": chat_id, "since": 0, "request_id": "r"}))
    sending = asyncio.ensure_future(asyncio.gather(*(send(alice, chat_id, f"live {i}") for i in range(10))))
    before_ack = []
    while (event := await next_event(resumer))["type"] != "ack":
        before_ack.append(event)
    await sending
    # Every event up to the ack's seq came before it; live events past it may
    # come before the ack or after it; the socket gets every seq once, in order.
    seqs_before = [e["seq"] for e in before_ack]
    assert seqs_before[: event["seq"]] == list(range(1, event["seq"] + 1)), (before_ack, event)
    after = [await next_event(resumer) for _ in range(15 - len(before_ack))]
    assert seqs_before + [e["seq"] for e in after] == list(range(1, 16))
    for socket in [*busy, resumer]:
        socket.close()


# Redis work in flight per user.


@pytest.mark.gen_test
async def test_a_users_requests_past_their_share_wait_then_are_refused_others_go_first():
    share = FairShare(per_user=2)
    release = asyncio.Event()
    holding = 0

    async def hold(user_id):
        nonlocal holding
        async with share.turn(user_id, wait_secs=5):
            holding += 1
            await release.wait()

    holders = [asyncio.ensure_future(hold(1)) for _ in range(2)]
    while holding < 2:
        await asyncio.sleep(0)
    waiting = asyncio.ensure_future(hold(1))  # a third: waits for a turn
    async with share.turn(2, wait_secs=0):  # another user: at once
        pass
    with pytest.raises(Busy) as refused:
        async with share.turn(1, wait_secs=0.05):
            pass
    assert refused.value.retry_after_secs >= 1 and share.refused == 1
    release.set()
    await asyncio.gather(*holders, waiting)
    assert holding == 3
    async with share.turn(None, wait_secs=0):  # no user (a login): no limit
        pass


@pytest.mark.gen_test(timeout=30)
@pytest.mark.limits(requests_per_user=1)
async def test_a_user_without_a_free_turn_gets_503_on_http_and_on_the_socket(base_url, make_user, storage):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice)
    socket = await open_socket(base_url, alice.cookies)
    async with storage.fair_share.turn(alice.user_id, wait_secs=0):  # her one turn, taken
        assert_retry_later(await alice.get("/api/chats"), 503)
        assert (await bob.get("/api/chats")).code == 200
        socket.write_message(json.dumps({"op": "typing", "chat_id": chat_id, "request_id": "t"}))
        refused = await next_event(socket)
        assert (refused["type"], refused["status"], refused["request_id"]) == ("error", 503, "t"), refused
        assert refused["retry_after"] >= 1
    assert (await alice.get("/api/chats")).code == 200
    assert storage.fair_share.refused == 2
    socket.close()


@pytest.mark.gen_test(timeout=120)
async def test_one_users_flood_of_heavy_reads_leaves_another_user_served(redis_url, sync_redis, tmp_path):
    server = RunningServer(
        "--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off", "--read-cache-mb", "0",
        "--redis-max-connections", "6", "--requests-per-user", "2", "--log-level", "error",
    )  # fmt: skip
    client = SimpleAsyncHTTPClient(force_instance=True, max_clients=100)
    try:
        alice, bob = ApiClient(client, server.base), ApiClient(client, server.base)
        assert (await alice.register()).code == 201 and (await bob.register()).code == 201
        chat_id = await create_chat(alice)
        # Two at a time (alice's share): 300 messages of 2,700 control characters,
        # each 16.2 kB of JSON (just under --content-max-bytes), so that every
        # page is cut at --history-page-max-bytes (1 MB): the heaviest read there is.
        for _ in range(150):
            await asyncio.gather(send(alice, chat_id, "\x01" * 2700), send(alice, chat_id, "\x01" * 2700))

        async def heavy_read():
            response = await client.fetch(
                f"{server.base}/api/chats/{chat_id}?limit=300", headers={"Cookie": _cookie(alice)},
                raise_error=False, request_timeout=60,
            )  # fmt: skip
            return response.code, response.headers.get("Retry-After"), response.body

        flood = [asyncio.ensure_future(heavy_read()) for _ in range(150)]
        bob_codes = []
        while not all(f.done() for f in flood):
            bob_codes.append((await bob.get("/api/chats")).code)
        answers = await asyncio.gather(*flood)
        assert bob_codes and set(bob_codes) == {200}, bob_codes
        # Alice's extra requests were refused by her share (with Retry-After),
        # not left to time out in the pool's queue.
        refused = [a for a in answers if a[0] == 503]
        for code, retry_after, body in answers:
            assert code in (200, 503), (code, body[:200])
            if code == 503:
                assert retry_after is not None and int(retry_after) >= 1, body
                assert list(json.loads(body)) == ["error"]
        metrics = requests.get(server.base + "/metrics", timeout=10).text
        assert f"chat_user_requests_refused_total {float(len(refused))}" in metrics
    finally:
        client.close()
        server.stop()


def _cookie(client) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


# bcrypt's queue.


@pytest.mark.gen_test(timeout=120)
async def test_logins_past_the_bcrypt_queue_are_refused_at_once(redis_url, sync_redis, tmp_path):
    # One thread, two waiting: of six logins at once, three are checked, three refused.
    server = RunningServer(
        "--redis-url", redis_url, "--data-dir", str(tmp_path), "--bcrypt-cost", "13", "--bcrypt-threads", "1",
        "--bcrypt-queue", "2", "--login-failures-per-name", "6", "--logins-per-name", "6", "--log-level", "error",
    )  # fmt: skip
    client = SimpleAsyncHTTPClient(force_instance=True, max_clients=20)
    try:
        alice = ApiClient(client, server.base)
        assert (await alice.register()).code == 201
        finished = []

        async def login():
            response = await ApiClient(client, server.base).post(
                "/api/login", {"name": alice.name, "password": PASSWORD}
            )
            finished.append(response.code)
            return response

        answers = await asyncio.gather(*(login() for _ in range(6)))
        codes = sorted(a.code for a in answers)
        assert codes == [200, 200, 200, 503, 503, 503], answers
        for refused in (a for a in answers if a.code == 503):
            assert_retry_later(refused, 503)
        # Refused at once: every refusal came before the first login that was checked.
        assert finished[:3] == [503, 503, 503], finished
        metrics = requests.get(server.base + "/metrics", timeout=10).text
        assert "chat_bcrypt_refused_total 3.0" in metrics
        # A refusal holds no place in the rate limits (6 per name): the three
        # that were checked count, the three refused do not.
        assert (await ApiClient(client, server.base).post("/api/login", {"name": alice.name,
                                                                          "password": PASSWORD})).code == 200  # fmt: skip
    finally:
        client.close()
        server.stop()


# Successful logins.


@pytest.mark.gen_test
@pytest.mark.limits(rate_limits=True, logins_per_name=3, logins_per_address=5)
async def test_successful_logins_are_limited_per_name_and_per_address(make_user, new_client):
    alice, bob = await make_user(), await make_user()

    async def login(user, password=PASSWORD):
        return await new_client().post("/api/login", {"name": user.name, "password": password})

    for _ in range(3):
        assert_ok(await login(alice))
    message = assert_error(await login(alice), 429)
    assert "too many logins" in message
    retry_after = assert_retry_later(await login(alice), 429)
    assert 14 * 60 <= retry_after <= 15 * 60  # the login window
    assert (await alice.get("/api/chats")).code == 200  # a limit on logins ends no session

    assert_error(await login(bob, "wrong password"), 400)  # a failure is not a login
    for _ in range(2):  # the address's fourth and fifth
        assert_ok(await login(bob))
    assert "too many logins" in assert_error(await login(bob), 429)


@pytest.mark.gen_test
@pytest.mark.limits(rate_limits=True, logins_per_name=2)
async def test_a_correct_current_password_counts_as_a_login(make_user, new_client):
    alice = await make_user()
    change = {"password": "a new password", "current_password": PASSWORD}
    assert_ok(await alice.put(f"/api/user/{alice.user_id}", change))
    assert_ok(await new_client().post("/api/login", {"name": alice.name, "password": "a new password"}))
    back = {"password": PASSWORD, "current_password": "a new password"}
    assert_retry_later(await alice.put(f"/api/user/{alice.user_id}", back), 429)


# Adds.


async def set_allow_adds(client, value: str) -> None:
    assert_ok(await client.put(f"/api/user/{client.user_id}", {"allow_adds": value}))


REFUSED_ADD = "this user accepts adds only from people they share a chat with"


@pytest.mark.gen_test
async def test_allow_adds_is_shown_to_its_owner_only_and_checked(make_user):
    alice, bob = await make_user(), await make_user()
    assert (await alice.get(f"/api/user/{alice.user_id}")).json()["user"]["allow_adds"] == "anyone"
    await set_allow_adds(alice, "contacts")
    assert (await alice.get(f"/api/user/{alice.user_id}")).json()["user"]["allow_adds"] == "contacts"
    assert (await alice.get("/api/user", params={"name": alice.name})).json()["user"]["allow_adds"] == "contacts"
    seen_by_bob = (await bob.get(f"/api/user/{alice.user_id}")).json()["user"]
    assert seen_by_bob == {"id": alice.user_id, "name": alice.name}
    for wrong in ("nobody", "", "Contacts"):
        message = assert_error(await alice.put(f"/api/user/{alice.user_id}", {"allow_adds": wrong}), 400)
        assert "allow_adds" in message
    assert_error(await bob.put(f"/api/user/{alice.user_id}", {"allow_adds": "anyone"}), 403)
    assert (await alice.get(f"/api/user/{alice.user_id}")).json()["user"]["allow_adds"] == "contacts"


@pytest.mark.gen_test
async def test_contacts_only_refuses_strangers_and_accepts_people_sharing_a_chat(make_user, sync_redis):
    alice, friend, stranger = await make_user(), await make_user(), await make_user()
    await chat_with(friend, alice)  # added while alice accepted anyone: now they share a chat
    await set_allow_adds(alice, "contacts")

    strangers_chat = await create_chat(stranger)
    by_id = await stranger.post(f"/api/chats/{strangers_chat}/members", {"user_id": alice.user_id})
    assert assert_error(by_id, 403) == REFUSED_ADD
    by_name = await stranger.post(f"/api/chats/{strangers_chat}/members", {"name": alice.name})
    assert assert_error(by_name, 403) == REFUSED_ADD
    members = (await stranger.get(f"/api/chats/{strangers_chat}/members")).json()["members"]
    assert [m["id"] for m in members] == [stranger.user_id]
    assert str(strangers_chat) not in sync_redis.smembers(keys.user_chats_key(alice.user_id))
    # Unknown chats and users are still 404 (checked first).
    assert_error(await stranger.post("/api/chats/99999999/members", {"user_id": alice.user_id}), 404)

    friends_chat = await create_chat(friend)
    assert_ok(await friend.post(f"/api/chats/{friends_chat}/members", {"user_id": alice.user_id}), 201)
    other_chat = await create_chat(friend)
    assert_ok(await friend.post(f"/api/chats/{other_chat}/members", {"name": alice.name}), 201)

    await set_allow_adds(alice, "anyone")
    assert_ok(await stranger.post(f"/api/chats/{strangers_chat}/members", {"name": alice.name}), 201)


@pytest.mark.gen_test
async def test_sharing_a_chat_is_confirmed_against_the_chats_members(make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    await set_allow_adds(alice, "contacts")
    bobs_chat = await create_chat(bob)
    # A stale index entry (an interrupted leave) does not make them contacts.
    sync_redis.sadd(keys.user_chats_key(alice.user_id), bobs_chat)
    refused = await bob.post(f"/api/chats/{bobs_chat}/members", {"user_id": alice.user_id})
    assert assert_error(refused, 403) == REFUSED_ADD
    # Nor does a chat alice left.
    await set_allow_adds(alice, "anyone")
    shared = await chat_with(bob, alice)
    await set_allow_adds(alice, "contacts")
    assert_ok(await alice.delete("/api/chats", params={"chat_id": shared}))
    refused = await bob.post(f"/api/chats/{bobs_chat}/members", {"user_id": alice.user_id})
    assert assert_error(refused, 403) == REFUSED_ADD
