"""/api/chats (list, create, leave) and PUT /api/chats/{id} (rename)."""

import asyncio

import pytest

from storage import keys

from .api_helpers import (
    TIME_RE,
    add_member,
    assert_error,
    assert_ok,
    chat_ids_of,
    chat_with,
    chats_of,
    create_chat,
    history,
    members_of,
    send,
    summary,
)
from .apiclient import unique_name

SUMMARY_KEYS = {
    "id", "title", "owner_id", "created_at",
    "last_message", "last_message_id", "last_message_time", "sender_id", "last_message_edited_at", "seq", "epoch",
    "last_read_id", "unread_count",
}


async def tick():
    """Lets the millisecond clock move on, so activity times differ."""
    await asyncio.sleep(0.005)


# Listing


@pytest.mark.gen_test
async def test_new_user_has_no_chats(make_user):
    alice = await make_user()
    response = await alice.get("/api/chats")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"chats": []}


@pytest.mark.gen_test
async def test_empty_chat_summary_has_null_last_message(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice, "empty one")
    (chat,) = await chats_of(alice)
    assert set(chat) == SUMMARY_KEYS
    assert chat["id"] == chat_id and chat["title"] == "empty one" and chat["owner_id"] == alice.user_id
    assert TIME_RE.match(chat["created_at"]), chat
    assert chat["last_message"] is None
    assert chat["last_message_time"] is None
    assert chat["sender_id"] is None


@pytest.mark.gen_test
async def test_summary_shows_the_last_message(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(alice, chat_id, "first")
    last_id = await send(bob, chat_id, "second")
    last = (await history(alice, chat_id))[-1]

    for viewer in (alice, bob):
        chat = await summary(viewer, chat_id)
        assert chat["last_message"] == "second"
        assert chat["last_message_id"] == last_id
        assert chat["sender_id"] == bob.user_id
        assert chat["last_message_time"] == last["time"]
        assert chat["owner_id"] == alice.user_id


@pytest.mark.gen_test
async def test_deleting_the_last_message_shows_the_previous_one(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    first = await send(bob, chat_id, "earlier")
    second = await send(alice, chat_id, "later")

    assert_ok(await alice.delete(f"/api/chats/{chat_id}", params={"id": second}))
    chat = await summary(bob, chat_id)
    assert (chat["last_message"], chat["last_message_id"], chat["sender_id"]) == ("earlier", first, bob.user_id)

    assert_ok(await bob.delete(f"/api/chats/{chat_id}", params={"id": first}))
    chat = await summary(alice, chat_id)
    assert chat["last_message"] is None and chat["last_message_time"] is None and chat["sender_id"] is None


@pytest.mark.gen_test
async def test_chats_are_listed_by_most_recent_activity(make_user):
    alice = await make_user()
    first = await create_chat(alice)
    await tick()
    second = await create_chat(alice)
    await tick()
    third = await create_chat(alice)
    assert await chat_ids_of(alice) == [third, second, first]  # by creation

    await tick()
    await send(alice, first, "bump")
    assert await chat_ids_of(alice) == [first, third, second]
    await tick()
    await send(alice, second, "bump")
    assert await chat_ids_of(alice) == [second, first, third]


@pytest.mark.gen_test
async def test_list_holds_only_the_callers_chats(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    mine = await create_chat(alice)
    shared = await chat_with(bob, alice)
    await create_chat(carol)
    assert sorted(await chat_ids_of(alice)) == sorted([mine, shared])
    assert await chat_ids_of(bob) == [shared]


# Creating


@pytest.mark.gen_test
async def test_create_answers_201_with_id_and_location(make_user):
    alice = await make_user()
    response = await alice.post("/api/chats", {"title": "Project X"})
    body = assert_ok(response, 201)
    assert body == {"status": "ok", "id": body["id"]} and isinstance(body["id"], int)
    assert response.headers["Location"] == f"/api/chats/{body['id']}"
    assert (await alice.get(response.headers["Location"])).json() == {"messages": []}
    _, members = await members_of(alice, body["id"])
    assert members == [alice.user_id]


@pytest.mark.parametrize(
    "sent,shown",
    [("  padded  ", "padded"), ("\tTabbed\t", "Tabbed"), ("Чат 🎉", "Чат 🎉"), ("x" * 128, "x" * 128),
     ("a  b", "a  b")],
)
@pytest.mark.gen_test
async def test_create_trims_and_keeps_title(make_user, sent, shown):
    alice = await make_user()
    chat_id = await create_chat(alice, sent)
    assert (await summary(alice, chat_id))["title"] == shown


@pytest.mark.parametrize(
    "form",
    [{}, {"title": ""}, {"title": "   "}, {"title": "\n\t"}, {"title": "x" * 129},
     {"title": "two\nlines"}, {"title": "nul\x00byte"}, {"title": "bell\x07"}],
    ids=["missing", "empty", "blank", "whitespace", "129", "newline", "nul", "bell"],
)
@pytest.mark.gen_test
async def test_create_with_bad_title_is_400(make_user, form):
    alice = await make_user()
    assert_error(await alice.post("/api/chats", form), 400)
    assert await chats_of(alice) == []


@pytest.mark.gen_test
async def test_create_same_title_twice_is_409(make_user):
    alice, bob = await make_user(), await make_user()
    first = await create_chat(alice, "standup")
    assert_error(await alice.post("/api/chats", {"title": "  standup "}), 409)
    assert await chat_ids_of(alice) == [first]

    # Another user may use the title, and the comparison is exact.
    await create_chat(bob, "standup")
    await create_chat(alice, "Standup")


@pytest.mark.gen_test
async def test_a_title_others_chose_does_not_block_ones_own(make_user):
    """Only chats the caller created count: nobody can squat your titles by adding you."""
    alice, bob = await make_user(), await make_user()
    theirs = await chat_with(bob, alice, title="Family")
    mine = await create_chat(alice, "Family")
    assert sorted(await chat_ids_of(alice)) == sorted([theirs, mine])
    assert_error(await alice.post("/api/chats", {"title": "Family"}), 409)


@pytest.mark.gen_test
async def test_the_title_check_follows_renames(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, title="before")
    assert_ok(await bob.put(f"/api/chats/{chat_id}", {"title": "after"}))  # anyone may rename it
    assert_error(await alice.post("/api/chats", {"title": "after"}), 409)
    await create_chat(alice, "before")


@pytest.mark.gen_test
async def test_the_title_index_stays_bounded_and_in_step_over_many_renames(make_user, sync_redis):
    """The creator's index keeps a chat's newest 8 titles, both ways round, and
    forgets the chat when they leave; every title it let go is free again."""
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, title="title 0")
    for number in range(1, 12):
        assert_ok(await bob.put(f"/api/chats/{chat_id}", {"title": f"title {number}"}))
    kept = [f"title {number}" for number in range(4, 12)]
    assert sync_redis.hgetall(keys.user_created_chats_key(alice.user_id)) == {str(chat_id): "\n".join(kept)}
    assert sync_redis.hgetall(keys.user_created_titles_key(alice.user_id)) == {t: str(chat_id) for t in kept}
    assert_error(await alice.post("/api/chats", {"title": "title 11"}), 409)
    await create_chat(alice, "title 1")
    assert_ok(await alice.delete("/api/chats", params={"chat_id": chat_id}))
    assert list(sync_redis.hgetall(keys.user_created_titles_key(alice.user_id))) == ["title 1"]
    await create_chat(alice, "title 11")


@pytest.mark.gen_test
async def test_title_is_free_again_after_leaving(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, title="reused")
    assert_ok(await alice.delete("/api/chats", params={"chat_id": chat_id}))
    assert await create_chat(alice, "reused") != chat_id


@pytest.mark.gen_test
async def test_concurrent_creates_of_one_title_make_one_chat(make_user):
    """A double-clicked "create", on a server that is already busy."""
    alice = await make_user()
    await create_chat(alice)
    # Concurrent reads first, so the server holds open Redis connections as
    # it does under real load (cold, opening them serialises the requests).
    await asyncio.gather(*(alice.get("/api/chats") for _ in range(10)))
    responses = await asyncio.gather(*(alice.post("/api/chats", {"title": "double click"}) for _ in range(5)))
    assert sorted(r.code for r in responses) == [201, 409, 409, 409, 409], responses
    assert [c["title"] for c in await chats_of(alice)].count("double click") == 1


# Leaving


@pytest.mark.gen_test
async def test_leave_removes_chat_for_the_leaver_only(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(bob, chat_id, "bye")

    assert assert_ok(await bob.delete("/api/chats", params={"chat_id": chat_id})) == {"status": "ok"}
    assert await chat_ids_of(bob) == []
    assert_error(await bob.get(f"/api/chats/{chat_id}"), 403)
    assert_error(await bob.post(f"/api/chats/{chat_id}", {"content": "back?"}), 403)
    assert [m["content"] for m in await history(alice, chat_id)] == ["bye"]
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id])


@pytest.mark.gen_test
async def test_owner_leaving_passes_ownership_to_earliest_joined(make_user):
    alice, carol, bob = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, carol, bob)
    assert_ok(await alice.delete("/api/chats", params={"chat_id": chat_id}))

    assert await members_of(bob, chat_id) == (carol.user_id, [carol.user_id, bob.user_id])
    assert (await summary(bob, chat_id))["owner_id"] == carol.user_id
    # The new owner has the owner's powers.
    assert_ok(await carol.delete(f"/api/chats/{chat_id}/members", params={"user_id": bob.user_id}))


@pytest.mark.gen_test
async def test_last_member_leaving_deletes_chat_and_history(make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(alice, chat_id, "secret")
    assert_ok(await alice.delete("/api/chats", params={"chat_id": chat_id}))
    assert_ok(await bob.delete("/api/chats", params={"chat_id": chat_id}))

    for client in (alice, bob, await make_user()):
        assert_error(await client.get(f"/api/chats/{chat_id}"), 404)
        assert_error(await client.post(f"/api/chats/{chat_id}/members", {"user_id": client.user_id}), 404)
    for key in (f"chat:{{{chat_id}}}", f"chat:{{{chat_id}}}:members", f"chat:{{{chat_id}}}:messages"):
        assert not sync_redis.exists(key), key
    assert sync_redis.keys(f"chat:{{{chat_id}}}*") == []
    assert_error(await bob.delete("/api/chats", params={"chat_id": chat_id}), 404)


@pytest.mark.parametrize("params", [None, {"chat_id": ""}, {"chat_id": "abc"}, {"chat_id": "0"},
                                    {"chat_id": "-1"}, {"chat_id": "1.5"}])
@pytest.mark.gen_test
async def test_leave_with_bad_chat_id_is_400(make_user, params):
    alice = await make_user()
    chat_id = await create_chat(alice)
    assert_error(await alice.delete("/api/chats", params=params), 400)
    assert await chat_ids_of(alice) == [chat_id]


@pytest.mark.gen_test
async def test_leave_unknown_chat_is_404_and_not_member_is_403(make_user):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    assert_error(await stranger.delete("/api/chats", params={"chat_id": chat_id + 1000}), 404)
    assert_error(await stranger.delete("/api/chats", params={"chat_id": chat_id}), 403)
    assert await members_of(alice, chat_id) == (alice.user_id, [alice.user_id])


# Renaming


@pytest.mark.gen_test
async def test_any_member_may_rename_and_everyone_sees_it(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, title="old")
    assert assert_ok(await bob.put(f"/api/chats/{chat_id}", {"title": "  new name  "})) == {"status": "ok"}
    for viewer in (alice, bob):
        assert (await summary(viewer, chat_id))["title"] == "new name"
    assert_ok(await alice.put(f"/api/chats/{chat_id}", {"title": "Ünïcödé 🚀"}))
    assert (await summary(bob, chat_id))["title"] == "Ünïcödé 🚀"


@pytest.mark.parametrize("form", [{}, {"title": "  "}, {"title": "y" * 129}, {"title": "a\rb"}],
                         ids=["missing", "blank", "129", "control"])
@pytest.mark.gen_test
async def test_rename_with_bad_title_is_400(make_user, form):
    alice = await make_user()
    chat_id = await create_chat(alice, "kept")
    assert_error(await alice.put(f"/api/chats/{chat_id}", form), 400)
    assert (await summary(alice, chat_id))["title"] == "kept"


@pytest.mark.gen_test
async def test_rename_unknown_chat_is_404_and_not_member_is_403(make_user):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice, "kept")
    assert_error(await stranger.put(f"/api/chats/{chat_id + 1000}", {"title": "x"}), 404)
    assert_error(await stranger.put(f"/api/chats/{chat_id}", {"title": "x"}), 403)
    assert (await summary(alice, chat_id))["title"] == "kept"


@pytest.mark.gen_test
async def test_added_member_sees_the_chat_in_their_list(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice, unique_name("t"))
    assert await chat_ids_of(bob) == []
    await add_member(alice, chat_id, bob)
    assert await chat_ids_of(bob) == [chat_id]
