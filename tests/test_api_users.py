"""/api/user/{id}: looking people up, editing and deleting one's own account."""

import pytest

from .api_helpers import (
    assert_error,
    assert_ok,
    assert_session_cookies_expired,
    chat_ids_of,
    chat_with,
    client_with_cookies,
    history,
    members_of,
    send,
    summary,
    user_record,
)
from .apiclient import unique_name

PASSWORD = "correct horse"


async def login(new_client, name, password=PASSWORD):
    client = new_client()
    response = await client.post("/api/login", {"name": name, "password": password})
    return client, response


# Looking up


@pytest.mark.gen_test
async def test_own_record_includes_email_others_do_not(make_user):
    alice, bob = await make_user(), await make_user()
    response = await alice.get(f"/api/user/{alice.user_id}")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"user": {"id": alice.user_id, "name": alice.name, "email": f"{alice.name}@example.org",
                                        "allow_adds": "anyone"}}  # fmt: skip
    assert (await alice.get(f"/api/user/{bob.user_id}")).json() == {"user": {"id": bob.user_id, "name": bob.name}}


@pytest.mark.parametrize("path", ["/api/user/anything", "/api/user/0", "/api/user/abc", "/api/user"])
@pytest.mark.gen_test
async def test_lookup_by_name_ignores_the_path_and_case(make_user, path):
    alice, bob = await make_user(), await make_user(unique_name("Bob"))
    response = await alice.get(path, params={"name": bob.name.swapcase()})
    assert response.json() == {"user": {"id": bob.user_id, "name": bob.name}}
    own = await alice.get(f"/api/user/{bob.user_id}", params={"name": alice.name})
    assert own.json()["user"] == {"id": alice.user_id, "name": alice.name, "email": f"{alice.name}@example.org",
                                  "allow_adds": "anyone"}  # fmt: skip


@pytest.mark.gen_test
async def test_lookup_unknown_is_404(make_user):
    alice = await make_user()
    assert_error(await alice.get(f"/api/user/{alice.user_id + 1000}"), 404)
    assert_error(await alice.get("/api/user/1", params={"name": unique_name("ghost")}), 404)


@pytest.mark.parametrize("path,params", [
    ("/api/user/abc", None), ("/api/user/0", None), ("/api/user/-1", None), ("/api/user/1.5", None),
    ("/api/user", None), ("/api/user/1", {"name": ""}), ("/api/user/1", {"name": "no spaces allowed"}),
])
@pytest.mark.gen_test
async def test_lookup_bad_id_or_name_is_400(make_user, path, params):
    alice = await make_user()
    assert_error(await alice.get(path, params=params), 400)


# Editing


@pytest.mark.parametrize("form", [
    {"name": "{new}"},
    {"email": "new.address@example.com"},
    {"name": "{new}", "email": "both@example.com"},
])
@pytest.mark.gen_test
async def test_update_own_name_and_or_email(make_user, form):
    alice, bob = await make_user(), await make_user()
    new_name = unique_name("renamed")
    form = {k: v.format(new=new_name) for k, v in form.items()}
    expected = {"id": alice.user_id, "name": alice.name, "email": f"{alice.name}@example.org", "allow_adds": "anyone",
                **form}  # fmt: skip

    response = await alice.put(f"/api/user/{alice.user_id}", form)
    assert assert_ok(response) == {"status": "ok"}
    assert await user_record(alice, alice.user_id) == expected
    seen_by_bob = await user_record(bob, alice.user_id)
    assert seen_by_bob == {"id": alice.user_id, "name": expected["name"]}


@pytest.mark.gen_test
async def test_rename_moves_login_and_frees_the_old_name(make_user, new_client):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(bob, alice)
    old, new = alice.name, unique_name("new")
    assert_ok(await alice.put(f"/api/user/{alice.user_id}", {"name": new}))

    assert (await login(new_client, new))[1].code == 200
    assert_error((await login(new_client, old))[1], 400)
    assert_error(await bob.get("/api/user/1", params={"name": old}), 404)
    members = (await bob.get(f"/api/chats/{chat_id}/members")).json()["members"]
    assert {"id": alice.user_id, "name": new, "online": False} in members
    # The old name is free for someone else.
    newcomer = new_client()
    assert (await newcomer.register(old)).code == 201
    assert (await bob.get("/api/user/1", params={"name": old})).json()["user"]["id"] == newcomer.user_id


@pytest.mark.gen_test
async def test_changing_only_the_case_of_own_name_works(make_user, new_client):
    alice = await make_user(unique_name("lower"))
    assert_ok(await alice.put(f"/api/user/{alice.user_id}", {"name": alice.name.upper()}))
    assert (await user_record(alice, alice.user_id))["name"] == alice.name.upper()
    assert (await login(new_client, alice.name))[1].code == 200
    assert (await login(new_client, alice.name.upper()))[1].code == 200
    assert_error(await new_client().register(alice.name), 400)  # still taken


@pytest.mark.gen_test
async def test_rename_to_a_name_someone_else_has_is_400(make_user):
    alice, bob = await make_user(), await make_user(unique_name("Bob"))
    for taken in (bob.name, bob.name.lower(), bob.name.upper()):
        assert_error(await alice.put(f"/api/user/{alice.user_id}", {"name": taken, "email": "x@y.z"}), 400)
    assert await user_record(alice, alice.user_id) == {
        "id": alice.user_id, "name": alice.name, "email": f"{alice.name}@example.org", "allow_adds": "anyone"}
    assert (await user_record(alice, bob.user_id))["name"] == bob.name


@pytest.mark.parametrize("form", [
    {}, {"other": "field"}, {"name": ""}, {"name": "bad name"}, {"name": "n" * 33}, {"name": "ünï"},
    {"email": ""}, {"email": "no-at-sign"}, {"email": "two@@example.org"}, {"email": "a b@example.org"},
    {"email": "a@" + "e" * 253}, {"name": "{valid}", "email": "broken"}, {"name": "bad name", "email": "ok@x.org"},
], ids=["neither", "other-field", "empty-name", "space-name", "long-name", "unicode-name", "empty-email",
        "no-at", "two-at", "space-email", "long-email", "valid-name-bad-email", "bad-name-valid-email"])
@pytest.mark.gen_test
async def test_update_with_bad_input_is_400_and_changes_nothing(make_user, form):
    alice = await make_user()
    before = await user_record(alice, alice.user_id)
    form = {k: v.format(valid=unique_name()) for k, v in form.items()}
    assert_error(await alice.put(f"/api/user/{alice.user_id}", form), 400)
    assert await user_record(alice, alice.user_id) == before


@pytest.mark.gen_test
async def test_update_someone_else_is_403_and_unknown_is_404(make_user, new_client):
    alice, bob = await make_user(), await make_user()
    assert_error(await alice.put(f"/api/user/{bob.user_id}", {"email": "hijack@evil.org"}), 403)
    assert_error(await alice.put(f"/api/user/{bob.user_id}", {"name": unique_name()}), 403)
    assert_error(await alice.put(f"/api/user/{bob.user_id + 1000}", {"email": "x@y.org"}), 404)
    assert await user_record(bob, bob.user_id) == {"id": bob.user_id, "name": bob.name,
                                                    "email": f"{bob.name}@example.org", "allow_adds": "anyone"}
    assert_error(await alice.put("/api/user/abc", {"email": "x@y.org"}), 400)


# Deleting


@pytest.mark.gen_test
async def test_delete_account_ends_every_session(make_user, new_client):
    alice = await make_user()
    phone, _ = await login(new_client, alice.name)
    old_cookies = dict(alice.cookies)

    response = await alice.delete(f"/api/user/{alice.user_id}")
    assert assert_ok(response) == {"status": "ok"}
    assert_session_cookies_expired(response)
    assert alice.cookies == {}
    assert_error(await phone.get("/api/chats"), 401)
    assert_error(await client_with_cookies(new_client, old_cookies).get("/api/chats"), 401)
    assert_error((await login(new_client, alice.name))[1], 400)


@pytest.mark.gen_test
async def test_delete_account_leaves_chats_and_keeps_messages(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    owned = await chat_with(alice, bob, carol)
    joined = await chat_with(carol, alice)
    await send(alice, owned, "alice in owned")
    await send(alice, joined, "alice in joined")

    assert_ok(await alice.delete(f"/api/user/{alice.user_id}"))
    assert await members_of(carol, owned) == (bob.user_id, [bob.user_id, carol.user_id])
    assert (await summary(carol, owned))["owner_id"] == bob.user_id
    assert await members_of(carol, joined) == (carol.user_id, [carol.user_id])
    for chat_id, text in ((owned, "alice in owned"), (joined, "alice in joined")):
        (message,) = await history(carol, chat_id)
        assert (message["sender_id"], message["content"]) == (alice.user_id, text)
    assert_error(await carol.get(f"/api/user/{alice.user_id}"), 404)
    assert_error(await carol.post(f"/api/chats/{joined}/members", {"user_id": alice.user_id}), 404)


@pytest.mark.gen_test
async def test_deleting_the_only_member_deletes_their_chats(make_user, sync_redis):
    alice = await make_user()
    chat_id = await chat_with(alice)
    await send(alice, chat_id, "alone")
    assert_ok(await alice.delete(f"/api/user/{alice.user_id}"))
    assert sync_redis.keys(f"chat:{{{chat_id}}}*") == []
    other = await make_user()
    assert_error(await other.get(f"/api/chats/{chat_id}"), 404)


@pytest.mark.gen_test
async def test_deleted_name_can_be_registered_by_a_new_user(make_user, new_client):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    assert_ok(await alice.delete(f"/api/user/{alice.user_id}"))

    again = new_client()
    assert (await again.register(alice.name)).code == 201
    assert again.user_id != alice.user_id
    assert await chat_ids_of(again) == []
    assert_error(await again.get(f"/api/chats/{chat_id}"), 403)
    assert (await bob.get("/api/user/1", params={"name": alice.name})).json()["user"]["id"] == again.user_id


@pytest.mark.gen_test
async def test_delete_someone_else_is_403_and_unknown_is_404(make_user):
    alice, bob = await make_user(), await make_user()
    assert_error(await alice.delete(f"/api/user/{bob.user_id}"), 403)
    assert_error(await alice.delete(f"/api/user/{bob.user_id + 1000}"), 404)
    assert_error(await alice.delete("/api/user/abc"), 400)
    assert (await bob.get("/api/chats")).code == 200
    assert (await user_record(alice, alice.user_id))["name"] == alice.name
