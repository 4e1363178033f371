"""Registration, login, logout and the session every other endpoint requires."""

import asyncio

import pytest

from .api_helpers import (
    VALID_LOOKING_TOKEN,
    assert_error,
    assert_ok,
    assert_session_cookies,
    assert_session_cookies_expired,
    chat_state,
    chat_with,
    client_with_cookies,
    send,
    user_record,
)
from .apiclient import unique_name

PASSWORD = "correct horse"


def set_cookie_names(response) -> set[str]:
    return {h.split("=", 1)[0] for h in response.headers.get_list("Set-Cookie")}


# Registration


@pytest.mark.parametrize("path", ["/api/reg", "/api/user", "/api/user/anything", "/api/user/12"])
@pytest.mark.gen_test
async def test_register_answers_201_with_id_location_and_session(new_client, path):
    client = new_client()
    name = unique_name()
    response = await client.post(path, {"name": name, "password": PASSWORD, "email": f"{name}@x.org"})

    body = assert_ok(response, 201)
    assert body == {"status": "ok", "id": body["id"]} and isinstance(body["id"], int)
    assert response.headers["Location"] == "/api/chats"
    assert_session_cookies(response, body["id"])
    client.user_id = body["id"]
    assert await user_record(client, body["id"]) == {"id": body["id"], "name": name, "email": f"{name}@x.org",
                                                     "allow_adds": "anyone"}  # fmt: skip


@pytest.mark.gen_test
async def test_register_gives_each_user_a_new_id(make_user):
    first, second = await make_user(), await make_user()
    assert first.user_id != second.user_id


@pytest.mark.gen_test
async def test_register_while_logged_in_switches_to_the_new_account(make_user):
    alice = await make_user()
    response = await alice.register()
    assert response.code == 201
    assert alice.user_id == response.json()["id"]
    assert "email" in await user_record(alice, alice.user_id)  # the new account is "me"


@pytest.mark.parametrize("taken_as", ["same", "upper", "lower"])
@pytest.mark.gen_test
async def test_register_taken_name_is_400_case_insensitively(make_user, new_client, taken_as):
    name = unique_name("Mixed")
    await make_user(name)
    again = {"same": name, "upper": name.upper(), "lower": name.lower()}[taken_as]
    response = await new_client().register(again)
    assert_error(response, 400)
    assert "user_id" not in set_cookie_names(response)


@pytest.mark.gen_test
async def test_concurrent_registrations_of_one_name_let_exactly_one_win(new_client):
    name = unique_name()
    responses = await asyncio.gather(*(new_client().register(name) for _ in range(5)))
    codes = sorted(r.code for r in responses)
    assert codes == [201, 400, 400, 400, 400], responses


# Login


@pytest.mark.gen_test
async def test_login_answers_200_with_a_new_working_session(make_user, new_client):
    alice = await make_user()
    other = new_client()
    response = await other.post("/api/login", {"name": alice.name, "password": PASSWORD})

    assert assert_ok(response) == {"status": "ok"}
    assert response.headers["Location"] == "/api/chats"
    assert_session_cookies(response, alice.user_id)
    assert other.cookies["token"] != alice.cookies["token"]
    other.user_id = alice.user_id
    # Both sessions are the same user, and both work.
    assert "email" in await user_record(other, alice.user_id)
    assert "email" in await user_record(alice, alice.user_id)


@pytest.mark.parametrize("case", [str.upper, str.lower, str.swapcase])
@pytest.mark.gen_test
async def test_login_name_is_case_insensitive(make_user, new_client, case):
    alice = await make_user(unique_name("Al"))
    response = await new_client().post("/api/login", {"name": case(alice.name), "password": PASSWORD})
    assert response.code == 200, response
    assert response.headers["Location"] == "/api/chats"


@pytest.mark.gen_test
async def test_login_failures_are_indistinguishable_and_never_500(make_user, new_client):
    alice = await make_user()
    attempts = [
        {"name": alice.name, "password": "wrong password"},
        {"name": unique_name(), "password": PASSWORD},
        {"name": alice.name, "password": "p" * 100},  # past bcrypt's 72 bytes
        {"name": alice.name, "password": "é" * 50},  # 100 bytes in UTF-8
        {"name": "no such name!", "password": PASSWORD},  # cannot be a name at all
        {"name": alice.name, "password": ""},
        {"name": alice.name},
    ]
    bodies = []
    for form in attempts:
        client = new_client()
        response = await client.post("/api/login", form)
        assert_error(response, 400)
        assert client.cookies == {}, form
        bodies.append(response.text)
    assert len(set(bodies)) == 1, bodies


@pytest.mark.parametrize("form", [{}, {"password": PASSWORD}, {"name": "", "password": PASSWORD}])
@pytest.mark.gen_test
async def test_login_without_a_name_is_400(new_client, form):
    assert_error(await new_client().post("/api/login", form), 400)


@pytest.mark.gen_test
async def test_login_with_longest_multibyte_password(new_client):
    password = "é" * 36  # exactly 72 bytes
    alice = new_client()
    assert (await alice.register(password=password)).code == 201
    ok = await new_client().post("/api/login", {"name": alice.name, "password": password})
    assert ok.code == 200, ok
    # bcrypt would ignore bytes past 72; the 73-byte variant must still fail.
    bad = await new_client().post("/api/login", {"name": alice.name, "password": password + "x"})
    assert_error(bad, 400)


# Logout


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.gen_test
async def test_logout_expires_cookies_and_ends_the_session(make_user, new_client, method):
    alice = await make_user()
    old_cookies = dict(alice.cookies)
    response = await alice.request(method, "/api/logout")

    assert assert_ok(response) == {"status": "ok"}
    assert response.headers["Location"] == "/api/login"
    assert_session_cookies_expired(response)
    assert alice.cookies == {}
    replay = client_with_cookies(new_client, old_cookies)
    assert_error(await replay.get("/api/chats"), 401)
    assert_error(await replay.get("/api/logout"), 401)


@pytest.mark.gen_test
async def test_logout_without_cookies_is_401(new_client):
    assert_error(await new_client().get("/api/logout"), 401)


@pytest.mark.gen_test
async def test_logout_ends_only_that_session(make_user, new_client):
    alice = await make_user()
    laptop = new_client()
    assert (await laptop.post("/api/login", {"name": alice.name, "password": PASSWORD})).code == 200

    assert (await alice.get("/api/logout")).code == 200
    assert (await laptop.get("/api/chats")).code == 200
    assert_error(await alice.get("/api/chats"), 401)
    # Logging in again after logout works.
    assert (await alice.post("/api/login", {"name": alice.name, "password": PASSWORD})).code == 200
    assert (await alice.get("/api/chats")).code == 200


# 401 on every endpoint that needs a session


async def _world(make_user):
    """alice owns a chat with bob in it; each has sent a message."""
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(alice, chat_id, "from alice")
    await send(bob, chat_id, "from bob")
    return alice, bob, chat_id


# (method, path, form or params); {chat}, {me}, {other} are filled in. Each
# would succeed with alice's own cookies, so only the session can refuse it.
AUTHENTICATED = [
    ("GET", "/api/chats", None),
    ("POST", "/api/chats", {"title": "new chat"}),
    ("DELETE", "/api/chats", {"chat_id": "{chat}"}),
    ("GET", "/api/chats/{chat}", None),
    ("POST", "/api/chats/{chat}", {"content": "sneaky"}),
    ("PUT", "/api/chats/{chat}", {"title": "renamed"}),
    ("DELETE", "/api/chats/{chat}", {"id": "1"}),
    ("GET", "/api/chats/{chat}/members", None),
    ("POST", "/api/chats/{chat}/members", {"name": "{newcomer}"}),
    ("DELETE", "/api/chats/{chat}/members", {"user_id": "{other}"}),
    ("GET", "/api/user/{me}", None),
    ("GET", "/api/user/0", {"name": "{other_name}"}),
    ("PUT", "/api/user/{me}", {"email": "changed@x.org"}),
    ("DELETE", "/api/user/{me}", None),
    ("GET", "/api/logout", None),
    ("POST", "/api/logout", None),
]

BAD_SESSIONS = ["none", "wrong_token", "other_users_id", "token_of_logged_out_session"]


def _fill(value: str, ids: dict) -> str:
    return value.format(**ids)


async def _bad_cookies(kind, alice, bob, new_client):
    if kind == "none":
        return {}
    if kind == "wrong_token":
        return {"user_id": str(alice.user_id), "token": VALID_LOOKING_TOKEN}
    if kind == "other_users_id":  # alice's token, bob's id
        return {"user_id": str(bob.user_id), "token": alice.cookies["token"]}
    extra = new_client()
    assert (await extra.post("/api/login", {"name": alice.name, "password": PASSWORD})).code == 200
    cookies = dict(extra.cookies)
    assert (await extra.get("/api/logout")).code == 200
    return cookies


async def _send(client, method, path, data):
    if method in ("GET", "DELETE"):
        return await client.request(method, path, params=data)
    return await client.request(method, path, data=data)


@pytest.mark.parametrize("kind", BAD_SESSIONS)
@pytest.mark.parametrize("method,path,data", AUTHENTICATED, ids=[f"{m} {p}" for m, p, _ in AUTHENTICATED])
@pytest.mark.gen_test
async def test_endpoint_without_a_valid_session_is_401_and_changes_nothing(
    make_user, new_client, method, path, data, kind
):
    alice, bob, chat_id = await _world(make_user)
    newcomer = await make_user()
    ids = {"chat": chat_id, "me": alice.user_id, "other": bob.user_id,
           "other_name": bob.name, "newcomer": newcomer.name}
    before = await chat_state(alice, chat_id)
    me_before = await user_record(alice, alice.user_id)

    intruder = client_with_cookies(new_client, await _bad_cookies(kind, alice, bob, new_client))
    filled = {k: _fill(v, ids) for k, v in data.items()} if data else None
    response = await _send(intruder, method, _fill(path, ids), filled)

    assert_error(response, 401)
    assert response.headers.get_list("Set-Cookie") == []
    assert await chat_state(alice, chat_id) == before
    assert await user_record(alice, alice.user_id) == me_before
    assert (await bob.get("/api/chats")).code == 200


MALFORMED = [
    {"user_id": "abc", "token": "{token}"},
    {"user_id": "-{uid}", "token": "{token}"},
    {"user_id": "{uid}.0", "token": "{token}"},
    {"user_id": "99999999999999999999", "token": "{token}"},
    {"user_id": "", "token": ""},
    {"user_id": "{uid}"},
    {"token": "{token}"},
    {"user_id": "{uid}", "token": "short"},
    {"user_id": "{uid}", "token": "{token}x"},
    {"user_id": "{uid}", "token": "{token_cut}!"},
]


@pytest.mark.parametrize("template", MALFORMED)
@pytest.mark.gen_test
async def test_malformed_session_cookies_are_401(make_user, new_client, template):
    alice = await make_user()
    token = alice.cookies["token"]
    cookies = {k: v.format(uid=alice.user_id, token=token, token_cut=token[:-1]) for k, v in template.items()}
    intruder = client_with_cookies(new_client, cookies)
    assert_error(await intruder.get("/api/chats"), 401)
    assert_error(await intruder.post("/api/chats", {"title": "x"}), 401)
    assert (await alice.get("/api/chats")).json() == {"chats": []}
