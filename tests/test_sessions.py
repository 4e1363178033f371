"""Password changes end the other sessions; tokens have an absolute lifetime
and an idle timeout."""

import asyncio
import dataclasses

import pytest

from storage import keys
from storage.users import token_digest

from .api_helpers import assert_error, assert_ok
from .wsclient import closed, open_socket

PASSWORD = "correct horse"
NEW_PASSWORD = "battery staple"


async def logged_in_again(new_client, user):
    client = new_client()
    assert_ok(await client.post("/api/login", {"name": user.name, "password": PASSWORD}))
    client.user_id = user.user_id
    return client


async def change_password(client, **fields):
    return await client.put(f"/api/user/{client.user_id}", fields)


@pytest.mark.gen_test
async def test_a_password_change_ends_every_other_session(make_user, new_client, base_url):
    alice = await make_user()
    phone = await logged_in_again(new_client, alice)
    phone_socket = await open_socket(base_url, phone.cookies)
    own_socket = await open_socket(base_url, alice.cookies)

    assert_ok(await change_password(alice, password=NEW_PASSWORD, current_password=PASSWORD))

    assert await closed(phone_socket) == 4001
    assert_error(await phone.get("/api/chats"), 401)
    assert (await alice.get("/api/chats")).code == 200  # the caller's own session stays
    assert_error(await new_client().post("/api/login", {"name": alice.name, "password": PASSWORD}), 400)
    assert_ok(await new_client().post("/api/login", {"name": alice.name, "password": NEW_PASSWORD}))
    own_socket.close()


@pytest.mark.gen_test
async def test_a_password_change_needs_the_right_current_password(make_user, new_client):
    alice = await make_user()
    phone = await logged_in_again(new_client, alice)
    assert "current_password" in assert_error(await change_password(alice, password=NEW_PASSWORD), 400)
    assert "current_password" in assert_error(
        await change_password(alice, password=NEW_PASSWORD, current_password="not it at all"), 403
    )
    assert_error(await change_password(alice, password="short", current_password=PASSWORD), 400)
    # Nothing changed: the old password works, the other session lives.
    assert (await phone.get("/api/chats")).code == 200
    assert_ok(await new_client().post("/api/login", {"name": alice.name, "password": PASSWORD}))


@pytest.mark.gen_test
async def test_a_refused_rename_changes_no_password(make_user, new_client):
    alice, bob = await make_user(), await make_user()
    response = await change_password(alice, name=bob.name, password=NEW_PASSWORD, current_password=PASSWORD)
    assert_error(response, 400)
    assert_ok(await new_client().post("/api/login", {"name": alice.name, "password": PASSWORD}))


@pytest.mark.gen_test
async def test_name_and_password_change_together(make_user, new_client):
    alice = await make_user()
    assert_ok(await change_password(alice, name=alice.name + "_x", password=NEW_PASSWORD, current_password=PASSWORD))
    assert_ok(await new_client().post("/api/login", {"name": alice.name + "_x", "password": NEW_PASSWORD}))


@pytest.mark.gen_test
async def test_a_login_with_the_old_password_cannot_outlive_the_change(storage):
    user_id = await storage.users.register("ola", "ola@example.org", PASSWORD)
    _, checked_hash = await storage.users._check_password("ola", PASSWORD)
    keep = await storage.users.create_session(user_id)
    assert await storage.users.set_password(user_id, checked_hash, NEW_PASSWORD, keep)
    # A login that checked the old password just before the change:
    with pytest.raises(Exception) as refused:
        await storage.users.create_session(user_id, checked_hash=checked_hash)
    assert type(refused.value).__name__ == "NotFound"
    # And a second change racing the first (same checked hash) is refused.
    assert not await storage.users.set_password(user_id, checked_hash, "third password", keep)


@pytest.fixture
def settings(settings, request):
    marker = request.node.get_closest_marker("lifetimes")
    return dataclasses.replace(settings, **(marker.kwargs if marker else {}))


@pytest.mark.gen_test(timeout=20)
@pytest.mark.lifetimes(token_idle_secs=2)
async def test_an_idle_session_ends_and_a_used_one_lives_on(make_user, new_client):
    alice = await make_user()
    busy = await logged_in_again(new_client, alice)
    for _ in range(8):  # 4 s of use, every half second: longer than the idle timeout
        assert (await busy.get("/api/chats")).code == 200
        await asyncio.sleep(0.5)
    assert_error(await alice.get("/api/chats"), 401)  # idle for 4 s
    assert (await busy.get("/api/chats")).code == 200


@pytest.mark.gen_test(timeout=20)
@pytest.mark.lifetimes(token_ttl_secs=4, token_idle_secs=60)
async def test_a_session_ends_at_its_absolute_lifetime_even_in_use(make_user, sync_redis):
    # Lifetimes are whole seconds from a whole-second login time: this
    # session ends between 3 and 4 s from now.
    alice = await make_user()
    digest = token_digest(alice.cookies["token"])
    assert sync_redis.ttl(keys.session_key(alice.user_id, digest)) <= 4
    for _ in range(4):
        await asyncio.sleep(0.5)
        assert (await alice.get("/api/chats")).code == 200
    await asyncio.sleep(2.2)
    assert_error(await alice.get("/api/chats"), 401)
