"""Who may touch what: every endpoint that names a chat, message or user,
called by someone without the right to, refuses and changes nothing."""

import pytest

from .api_helpers import (
    assert_error,
    chat_ids_of,
    chat_state,
    chat_with,
    send,
    user_record,
)

PASSWORD = "correct horse"


async def _world(make_user, new_client):
    """alice owns a chat with bob; both have written; carol is a stranger, dave a bystander."""
    alice, bob = await make_user(), await make_user()
    carol, dave = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, title="private room")
    await send(alice, chat_id, "alice: 1")
    await send(bob, chat_id, "bob: 2")
    await send(alice, chat_id, "alice: 3")
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "chat": chat_id, "new_client": new_client}


# (method, path, fields): fields go in the query for GET/DELETE, the body otherwise.
# "{chat}" is the chat id, "{alice}"... a user's id, "{dave_name}" dave's name.
CHAT_ENDPOINTS = [
    ("GET", "/api/chats/{chat}", None),
    ("GET", "/api/chats/{chat}", {"after": "1", "limit": "1"}),
    ("POST", "/api/chats/{chat}", {"content": "let me in"}),
    ("PUT", "/api/chats/{chat}", {"title": "taken over"}),
    ("DELETE", "/api/chats/{chat}", {"id": "1"}),
    ("DELETE", "/api/chats/{chat}", {"id": "2"}),
    ("DELETE", "/api/chats", {"chat_id": "{chat}"}),
    ("GET", "/api/chats/{chat}/members", None),
    ("POST", "/api/chats/{chat}/members", {"user_id": "{carol}"}),
    ("POST", "/api/chats/{chat}/members", {"name": "{dave_name}"}),
    ("DELETE", "/api/chats/{chat}/members", {"user_id": "{bob}"}),
    ("DELETE", "/api/chats/{chat}/members", {"user_id": "{alice}"}),
    ("DELETE", "/api/chats/{chat}/members", {"user_id": "{carol}"}),
]
USER_ENDPOINTS = [
    ("PUT", "/api/user/{alice}", {"name": "{fresh_name}"}),
    ("PUT", "/api/user/{alice}", {"email": "carol@evil.example"}),
    ("PUT", "/api/user/{alice}", {"name": "{fresh_name}", "email": "carol@evil.example"}),
    ("DELETE", "/api/user/{alice}", None),
]


def _ids(endpoints):
    return [f"{m} {p} {sorted(f or {})}" for m, p, f in endpoints]


async def call(client, method, path, fields, world):
    values = {
        "chat": world["chat"],
        "dave_name": world["dave"].name,
        "fresh_name": "fresh_" + world["dave"].name,
        **{who: world[who].user_id for who in ("alice", "bob", "carol", "dave")},
    }
    path = path.format(**values)
    fields = {k: v.format(**values) for k, v in fields.items()} if fields else None
    if method in ("GET", "DELETE"):
        return await client.request(method, path, params=fields)
    return await client.request(method, path, data=fields)


async def everything_alice_sees(world):
    alice = world["alice"]
    return {
        "chat": await chat_state(alice, world["chat"]),
        "alice": await user_record(alice, alice.user_id),
        "bob": await user_record(world["bob"], world["bob"].user_id),
    }


async def assert_nothing_changed(world, before):
    assert await everything_alice_sees(world) == before
    for who in ("carol", "dave"):
        assert await chat_ids_of(world[who]) == [], who
    # alice's account and password are untouched.
    login = await world["new_client"]().post("/api/login", {"name": world["alice"].name, "password": PASSWORD})
    assert login.code == 200, login


@pytest.mark.parametrize("method,path,fields", CHAT_ENDPOINTS, ids=_ids(CHAT_ENDPOINTS))
@pytest.mark.gen_test
async def test_stranger_gets_403_on_chat_endpoints(make_user, new_client, method, path, fields):
    world = await _world(make_user, new_client)
    before = await everything_alice_sees(world)
    body = assert_error(await call(world["carol"], method, path, fields, world), 403)
    for secret in ("private room", "alice: 1", "bob: 2", world["bob"].name):
        assert secret not in body
    await assert_nothing_changed(world, before)


@pytest.mark.parametrize("method,path,fields", CHAT_ENDPOINTS, ids=_ids(CHAT_ENDPOINTS))
@pytest.mark.gen_test
async def test_unknown_chat_is_404_before_403(make_user, new_client, method, path, fields):
    world = await _world(make_user, new_client)
    world_elsewhere = {**world, "chat": world["chat"] + 1000}
    before = await everything_alice_sees(world)
    assert_error(await call(world["carol"], method, path, fields, world_elsewhere), 404)
    await assert_nothing_changed(world, before)


@pytest.mark.parametrize("method,path,fields", USER_ENDPOINTS, ids=_ids(USER_ENDPOINTS))
@pytest.mark.parametrize("who", ["carol", "bob"])  # a stranger, and a fellow member
@pytest.mark.gen_test
async def test_other_users_account_is_403(make_user, new_client, who, method, path, fields):
    world = await _world(make_user, new_client)
    before = await everything_alice_sees(world)
    assert_error(await call(world[who], method, path, fields, world), 403)
    await assert_nothing_changed(world, before)
    assert (await world["alice"].get("/api/chats")).code == 200  # her session lives on


# Things a member still may not do.
MEMBER_FORBIDDEN = [
    ("DELETE", "/api/chats/{chat}", {"id": "1"}),  # alice's message
    ("DELETE", "/api/chats/{chat}", {"id": "3"}),
    ("DELETE", "/api/chats/{chat}/members", {"user_id": "{alice}"}),  # only the owner removes
]


@pytest.mark.parametrize("method,path,fields", MEMBER_FORBIDDEN, ids=_ids(MEMBER_FORBIDDEN))
@pytest.mark.gen_test
async def test_member_without_the_right_gets_403(make_user, new_client, method, path, fields):
    world = await _world(make_user, new_client)
    before = await everything_alice_sees(world)
    assert_error(await call(world["bob"], method, path, fields, world), 403)
    await assert_nothing_changed(world, before)


@pytest.mark.gen_test
async def test_owner_may_not_delete_a_members_message(make_user, new_client):
    world = await _world(make_user, new_client)
    before = await everything_alice_sees(world)
    assert_error(await call(world["alice"], "DELETE", "/api/chats/{chat}", {"id": "2"}, world), 403)
    await assert_nothing_changed(world, before)


FORMER_MEMBER = CHAT_ENDPOINTS + [("DELETE", "/api/chats/{chat}", {"id": "4"})]  # her own message


@pytest.mark.parametrize("method,path,fields", FORMER_MEMBER, ids=_ids(FORMER_MEMBER))
@pytest.mark.gen_test
async def test_former_member_gets_403_everywhere(make_user, new_client, method, path, fields):
    world = await _world(make_user, new_client)
    carol = world["carol"]
    # carol was in the chat for a while and said something, then was removed.
    await call(world["alice"], "POST", "/api/chats/{chat}/members", {"user_id": "{carol}"}, world)
    await send(carol, world["chat"], "carol: 4")
    removed = await call(world["alice"], "DELETE", "/api/chats/{chat}/members", {"user_id": "{carol}"}, world)
    assert removed.code == 200, removed
    before = await everything_alice_sees(world)

    assert_error(await call(carol, method, path, fields, world), 403)
    await assert_nothing_changed(world, before)


@pytest.mark.gen_test
async def test_ids_from_cookies_cannot_be_steered_by_fields(make_user, new_client):
    """Fields named like the session never act for another user."""
    world = await _world(make_user, new_client)
    carol, alice = world["carol"], world["alice"]
    before = await everything_alice_sees(world)
    forged = {"content": "as alice", "user_id": str(alice.user_id), "sender_id": str(alice.user_id)}
    assert_error(await carol.post(f"/api/chats/{world['chat']}", forged), 403)
    assert_error(await carol.get(f"/api/chats/{world['chat']}", params={"user_id": alice.user_id}), 403)
    await assert_nothing_changed(world, before)
