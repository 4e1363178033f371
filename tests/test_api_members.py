"""/api/chats/{id}/members: listing, adding and removing people."""

import pytest

from .api_helpers import (
    add_member,
    assert_error,
    assert_ok,
    chat_ids_of,
    chat_with,
    create_chat,
    history,
    members_of,
    send,
    summary,
)
from .apiclient import unique_name


def members_path(chat_id: int) -> str:
    return f"/api/chats/{chat_id}/members"


# Listing


@pytest.mark.gen_test
async def test_members_lists_owner_and_members_in_join_order(make_user):
    alice, carol, bob = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, carol, bob)
    response = await bob.get(members_path(chat_id))
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "owner_id": alice.user_id,
        "members": [
            {"id": alice.user_id, "name": alice.name, "online": False},
            {"id": carol.user_id, "name": carol.name, "online": False},
            {"id": bob.user_id, "name": bob.name, "online": False},
        ],
    }


@pytest.mark.gen_test
async def test_list_members_errors(make_user):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    assert_error(await stranger.get(members_path(chat_id + 1000)), 404)
    body = assert_error(await stranger.get(members_path(chat_id)), 403)
    assert alice.name not in body
    assert_error(await alice.get("/api/chats/abc/members"), 400)


# Adding


@pytest.mark.parametrize("by", ["user_id", "name", "name_other_case"])
@pytest.mark.gen_test
async def test_add_member_lets_them_read_and_post(make_user, by):
    alice, bob = await make_user(), await make_user(unique_name("Bob"))
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "welcome")
    form = {"user_id": {"user_id": bob.user_id}, "name": {"name": bob.name},
            "name_other_case": {"name": bob.name.swapcase()}}[by]

    response = await alice.post(members_path(chat_id), form)
    assert assert_ok(response, 201) == {"status": "ok"}
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id, bob.user_id])
    assert await chat_ids_of(bob) == [chat_id]
    assert [m["content"] for m in await history(bob, chat_id)] == ["welcome"]
    await send(bob, chat_id, "thanks")


@pytest.mark.gen_test
async def test_any_member_may_add_and_ownership_stays(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await add_member(bob, chat_id, carol)
    assert await members_of(carol, chat_id) == (alice.user_id, [alice.user_id, bob.user_id, carol.user_id])


@pytest.mark.gen_test
async def test_add_existing_member_is_409(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    assert_error(await alice.post(members_path(chat_id), {"user_id": bob.user_id}), 409)
    assert_error(await bob.post(members_path(chat_id), {"name": alice.name.upper()}), 409)
    assert_error(await alice.post(members_path(chat_id), {"user_id": alice.user_id}), 409)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id, bob.user_id])


@pytest.mark.gen_test
async def test_add_unknown_user_is_404(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    assert_error(await alice.post(members_path(chat_id), {"user_id": bob.user_id + 1000}), 404)
    assert_error(await alice.post(members_path(chat_id), {"name": unique_name("ghost")}), 404)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id])


@pytest.mark.parametrize(
    "form",
    [{}, {"user_id": ""}, {"user_id": "abc"}, {"user_id": "0"}, {"user_id": "-3"}, {"name": ""},
     {"name": "not a name!"}, {"name": "x" * 33}, {"member": "someone"}],
    ids=["neither", "empty-id", "abc", "zero", "negative", "empty-name", "bad-name", "long-name", "other-field"],
)
@pytest.mark.gen_test
async def test_add_member_bad_input_is_400(make_user, form):
    alice = await make_user()
    chat_id = await create_chat(alice)
    assert_error(await alice.post(members_path(chat_id), form), 400)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id])


@pytest.mark.gen_test
async def test_add_to_unknown_chat_is_404_and_by_non_member_is_403(make_user):
    alice, stranger, bob = await make_user(), await make_user(), await make_user()
    chat_id = await create_chat(alice)
    assert_error(await stranger.post(members_path(chat_id + 1000), {"user_id": bob.user_id}), 404)
    assert_error(await stranger.post(members_path(chat_id), {"user_id": bob.user_id}), 403)
    assert_error(await stranger.post(members_path(chat_id), {"user_id": stranger.user_id}), 403)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id])
    assert await chat_ids_of(bob) == []
    assert await chat_ids_of(stranger) == []


# Removing


@pytest.mark.gen_test
async def test_owner_removes_a_member(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, carol)
    await send(bob, chat_id, "bob was here")

    response = await alice.delete(members_path(chat_id), params={"user_id": bob.user_id})
    assert assert_ok(response) == {"status": "ok"}
    assert await members_of(carol, chat_id) == (alice.user_id, [alice.user_id, carol.user_id])
    assert await chat_ids_of(bob) == []
    for attempt in (
        bob.get(f"/api/chats/{chat_id}"),
        bob.post(f"/api/chats/{chat_id}", {"content": "still here?"}),
        bob.put(f"/api/chats/{chat_id}", {"title": "mine now"}),
        bob.get(members_path(chat_id)),
        bob.post(members_path(chat_id), {"user_id": bob.user_id}),
    ):
        assert_error(await attempt, 403)
    # What bob said stays in the history.
    assert [(m["sender_id"], m["content"]) for m in await history(carol, chat_id)] == [
        (bob.user_id, "bob was here")
    ]


@pytest.mark.gen_test
async def test_removed_member_can_be_added_back(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    assert_ok(await alice.delete(members_path(chat_id), params={"user_id": bob.user_id}))
    await add_member(alice, chat_id, bob)
    assert await chat_ids_of(bob) == [chat_id]
    assert (await bob.get(f"/api/chats/{chat_id}")).code == 200


@pytest.mark.gen_test
async def test_non_owner_removing_someone_else_is_403(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, carol)
    assert_error(await bob.delete(members_path(chat_id), params={"user_id": carol.user_id}), 403)
    assert_error(await bob.delete(members_path(chat_id), params={"user_id": alice.user_id}), 403)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id, bob.user_id, carol.user_id])


@pytest.mark.gen_test
async def test_member_removing_themself_leaves(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    assert_ok(await bob.delete(members_path(chat_id), params={"user_id": bob.user_id}))
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id])
    assert await chat_ids_of(bob) == []


@pytest.mark.gen_test
async def test_owner_removing_themself_passes_ownership(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, carol)
    assert_ok(await alice.delete(members_path(chat_id), params={"user_id": alice.user_id}))
    assert await members_of(carol, chat_id) == (bob.user_id, [bob.user_id, carol.user_id])
    assert (await summary(carol, chat_id))["owner_id"] == bob.user_id


@pytest.mark.gen_test
async def test_removing_a_non_member_is_404(make_user):
    alice, outsider = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    assert_error(await alice.delete(members_path(chat_id), params={"user_id": outsider.user_id}), 404)
    assert_error(await alice.delete(members_path(chat_id), params={"user_id": outsider.user_id + 1000}), 404)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id])


@pytest.mark.parametrize("params", [None, {"user_id": ""}, {"user_id": "abc"}, {"user_id": "0"},
                                    {"name": "bob"}])
@pytest.mark.gen_test
async def test_remove_member_bad_input_is_400(make_user, params):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    assert_error(await alice.delete(members_path(chat_id), params=params), 400)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id, bob.user_id])


@pytest.mark.gen_test
async def test_remove_from_unknown_chat_is_404_and_by_non_member_is_403(make_user):
    alice, bob, stranger = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    assert_error(await stranger.delete(members_path(chat_id + 1000), params={"user_id": bob.user_id}), 404)
    assert_error(await stranger.delete(members_path(chat_id), params={"user_id": bob.user_id}), 403)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id, bob.user_id])


@pytest.mark.gen_test
async def test_last_member_removing_themself_deletes_the_chat(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "echo")
    assert_ok(await alice.delete(members_path(chat_id), params={"user_id": alice.user_id}))
    assert await chat_ids_of(alice) == []
    assert_error(await alice.get(f"/api/chats/{chat_id}"), 404)
