"""Rate limits: failed logins (per name, per address), registrations per
address, messages per user; 429 with Retry-After; shared across processes."""

import asyncio
import dataclasses

import pytest
import requests

from .api_helpers import assert_error, assert_ok, chat_with, send
from .apiclient import unique_name
from .processes import RunningServer
from .wsclient import answer, open_socket

PASSWORD = "correct horse"


@pytest.fixture
def settings(settings, request):
    """Limits on, at their defaults unless a test marks others: @pytest.mark.limits(...)."""
    marker = request.node.get_closest_marker("limits")
    return dataclasses.replace(settings, **{"rate_limits": True, **(marker.kwargs if marker else {})})


def assert_limited(response) -> int:
    """A JSON 429 with a whole number of seconds in Retry-After; returns it."""
    message = assert_error(response, 429)
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1 and f"{retry_after} s" in message, (message, retry_after)
    return retry_after


async def login(client, name, password):
    return await client.post("/api/login", {"name": name, "password": password})


@pytest.mark.gen_test
async def test_five_failed_logins_for_a_name_then_429_even_with_the_right_password(make_user, new_client):
    alice = await make_user()
    for _ in range(5):
        assert_error(await login(new_client(), alice.name, "wrong password"), 400)
    retry_after = assert_limited(await login(new_client(), alice.name.upper(), PASSWORD))
    assert 14 * 60 <= retry_after <= 15 * 60  # the window is 15 minutes
    response = await alice.get("/api/chats")
    assert response.code == 200  # a limit on logins ends no session


@pytest.mark.gen_test
async def test_a_successful_login_forgets_the_names_failures(make_user, new_client):
    alice = await make_user()
    for _ in range(4):
        assert_error(await login(new_client(), alice.name, "wrong password"), 400)
    assert_ok(await login(new_client(), alice.name, PASSWORD))
    for _ in range(5):
        assert_error(await login(new_client(), alice.name, "wrong password"), 400)
    assert_limited(await login(new_client(), alice.name, "wrong password"))


@pytest.mark.gen_test(timeout=20)
async def test_the_login_limit_resets_when_the_window_passes(redis_url, sync_redis):
    # A server process of its own, with a two-second window.
    server = RunningServer("--redis-url", redis_url, "--login-window-secs", "2", "--log-level", "warning")
    try:
        name = unique_name()
        session = requests.Session()
        assert session.post(server.base + "/api/reg", data={"name": name, "password": PASSWORD,
                                                              "email": "a@b.org"}).status_code == 201  # fmt: skip
        for _ in range(5):
            assert requests.post(server.base + "/api/login", data={"name": name, "password": "nope!"}).status_code == 400
        refused = requests.post(server.base + "/api/login", data={"name": name, "password": PASSWORD})
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 2
        await asyncio.sleep(2.2)
        assert requests.post(server.base + "/api/login", data={"name": name, "password": PASSWORD}).status_code == 200
    finally:
        server.stop()


@pytest.mark.gen_test
async def test_failures_per_address_count_across_names(new_client, settings):
    # 50 by default: every name below fails once, from the same address.
    for index in range(settings.login_failures_per_address):
        assert_error(await login(new_client(), f"nobody{index}", "wrong password"), 400)
    assert_limited(await login(new_client(), "somebody_else", "wrong password"))


@pytest.mark.gen_test
async def test_a_spoofed_forwarded_for_does_not_escape_the_address_limit(new_client, settings):
    for index in range(settings.login_failures_per_address):
        assert_error(await login(new_client(), f"nobody{index}", "x"), 400)
    spoofed = await new_client().post(
        "/api/login", {"name": "other", "password": "x"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert_limited(spoofed)  # no trusted proxies: the header is ignored


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(redis_url, sync_redis):
    server = RunningServer(
        "--redis-url", redis_url, "--trusted-proxies", "127.0.0.0/8", "--login-failures-per-address", "2",
        "--log-level", "warning",
    )  # fmt: skip
    try:
        def attempt(client_address, name):
            headers = {"X-Forwarded-For": f"198.51.100.7, {client_address}"}  # the leftmost hop is the client's own claim
            return requests.post(server.base + "/api/login", data={"name": name, "password": "x"}, headers=headers)

        assert [attempt("203.0.113.1", f"n{i}").status_code for i in range(3)] == [400, 400, 429]
        assert attempt("203.0.113.2", "n9").status_code == 400  # another client behind the same proxy
    finally:
        server.stop()


def test_login_failures_are_counted_across_server_processes(redis_url, sync_redis):
    first = RunningServer("--redis-url", redis_url, "--log-level", "warning")
    second = RunningServer("--redis-url", redis_url, "--log-level", "warning")
    try:
        name = unique_name()
        answers = [
            requests.post(server.base + "/api/login", data={"name": name, "password": "x"}).status_code
            for server in (first, second, first, second, first, second)
        ]
        assert answers == [400] * 5 + [429]
    finally:
        first.stop()
        second.stop()


@pytest.mark.gen_test
async def test_a_wrong_current_password_counts_as_a_failed_login(make_user, new_client):
    alice = await make_user()
    for _ in range(5):
        response = await alice.put(
            f"/api/user/{alice.user_id}", {"password": "new password!", "current_password": "wrong one"}
        )
        assert_error(response, 403)
    assert_limited(
        await alice.put(f"/api/user/{alice.user_id}", {"password": "new password!", "current_password": PASSWORD})
    )
    assert_limited(await login(new_client(), alice.name, PASSWORD))


@pytest.mark.gen_test
async def test_registrations_per_address(new_client, settings):
    first = new_client()
    assert (await first.register()).code == 201
    for _ in range(3):  # refused registrations are not counted
        assert_error(await new_client().register(name=first.name), 400)
    for _ in range(settings.registrations_per_address - 1):
        assert (await new_client().register()).code == 201
    assert_limited(await new_client().register())
    assert (await first.get("/api/chats")).code == 200


@pytest.mark.gen_test
@pytest.mark.limits(message_burst=5, messages_per_sec=2.0)
async def test_messages_a_burst_then_a_steady_rate(make_user):
    alice = await make_user()
    chat_id = await chat_with(alice)
    for index in range(5):
        await send(alice, chat_id, f"burst {index}")
    retry_after = assert_limited(await alice.post(f"/api/chats/{chat_id}", {"content": "one too many"}))
    assert retry_after == 1
    await asyncio.sleep(0.6)  # one more every half second
    await send(alice, chat_id, "after the wait")
    assert_limited(await alice.post(f"/api/chats/{chat_id}", {"content": "too soon again"}))
    history = (await alice.get(f"/api/chats/{chat_id}")).json()["messages"]
    assert [m["content"] for m in history][-2:] == ["burst 4", "after the wait"]


@pytest.mark.gen_test
@pytest.mark.limits(message_burst=2, messages_per_sec=0.5)
async def test_the_message_rate_is_per_user_and_covers_the_socket(make_user, base_url):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    socket = await open_socket(base_url, alice.cookies)
    frame = {"op": "send", "chat_id": chat_id, "content": "hi", "request_id": 1}
    assert (await answer(socket, frame))["type"] == "ack"
    await send(alice, chat_id, "over http")
    refused = await answer(socket, frame)
    assert refused["type"] == "error" and refused["status"] == 429 and refused["retry_after"] == 2, refused
    await send(bob, chat_id, "bob has his own bucket")
    socket.close()


@pytest.mark.gen_test
@pytest.mark.limits(rate_limits=False)
async def test_with_limits_off_nothing_is_limited(make_user, new_client, settings):
    alice = await make_user()
    for _ in range(settings.login_failures_per_name + 3):
        assert_error(await login(new_client(), alice.name, "wrong password"), 400)
    assert_ok(await login(new_client(), alice.name, PASSWORD))
    chat_id = await chat_with(alice)
    for index in range(settings.message_burst + 10):
        await send(alice, chat_id, f"m{index}")


@pytest.mark.gen_test
@pytest.mark.limits(login_failures_per_name=2, bcrypt_cost=8)
async def test_logins_in_flight_hold_a_place_briefly_and_never_count_once_they_succeed(make_user, new_client):
    alice = await make_user()
    answers = await asyncio.gather(*(login(new_client(), alice.name, PASSWORD) for _ in range(6)))
    codes = sorted(a.code for a in answers)
    assert codes.count(200) >= 2 and 429 in codes and set(codes) <= {200, 429}, codes
    for refused in (a for a in answers if a.code == 429):
        assert assert_limited(refused) <= 30  # a place held by a login in flight, not a failure
    # Done: nothing was a failure, so the name is not limited at all.
    for _ in range(3):
        assert_ok(await login(new_client(), alice.name, PASSWORD))
    for _ in range(2):
        assert_error(await login(new_client(), alice.name, "wrong password"), 400)
    assert assert_limited(await login(new_client(), alice.name, PASSWORD)) > 30
