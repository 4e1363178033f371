"""GET/POST/DELETE /api/chats/{id}: history, paging, sending and deleting messages."""

import asyncio

import pytest

from .api_helpers import (
    TIME_RE,
    assert_error,
    assert_ok,
    chat_with,
    create_chat,
    history,
    history_ids,
    send,
)


async def chat_with_messages(make_user, count: int):
    """alice's chat holding messages 1..count."""
    alice = await make_user()
    chat_id = await create_chat(alice)
    for n in range(1, count + 1):
        assert await send(alice, chat_id, f"m{n}") == n
    return alice, chat_id


# Sending and reading


@pytest.mark.gen_test
async def test_send_answers_201_with_the_message_id(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    response = await alice.post(f"/api/chats/{chat_id}", {"content": "hi bob"})
    assert assert_ok(response, 201) == {"status": "ok", "id": 1}
    assert await send(bob, chat_id, "hi alice") == 2


@pytest.mark.gen_test
async def test_history_lists_messages_oldest_first_with_all_fields(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(alice, chat_id, "one")
    await send(bob, chat_id, "two")

    response = await bob.get(f"/api/chats/{chat_id}")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    messages = response.json()["messages"]
    assert [(m["id"], m["sender_id"], m["content"]) for m in messages] == [
        (1, alice.user_id, "one"),
        (2, bob.user_id, "two"),
    ]
    for message in messages:
        assert set(message) == {"id", "sender_id", "time", "content"}
        assert TIME_RE.match(message["time"]), message["time"]
    assert messages[0]["time"] <= messages[1]["time"]


@pytest.mark.gen_test
async def test_message_ids_count_per_chat(make_user):
    alice = await make_user()
    first, second = await create_chat(alice), await create_chat(alice)
    assert [await send(alice, first), await send(alice, first)] == [1, 2]
    assert [await send(alice, second), await send(alice, first)] == [1, 3]


@pytest.mark.gen_test
async def test_empty_chat_has_empty_history(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    assert (await alice.get(f"/api/chats/{chat_id}")).json() == {"messages": []}


@pytest.mark.parametrize(
    "content",
    [
        "  padded both sides  ",
        "line one\nline two\n",
        "windows\r\nline",
        "\n\tindented",
        "Привет, мир! 👋🏽 café 日本語",
        "a&b=c+d%20e;f",
        '<script>alert("x")</script> {"json": true}',
        "\\ backslash \\n not a newline",
        "z" * 4000,
        "🍣" * 4000,  # 4000 characters, 16000 bytes
    ],
    ids=["padded", "newlines", "crlf", "leading-ws", "unicode", "form-chars", "markup", "backslash",
         "4000", "4000-emoji"],
)
@pytest.mark.gen_test
async def test_content_is_stored_exactly_as_sent(make_user, content):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(alice, chat_id, content)
    (message,) = await history(bob, chat_id)
    assert message["content"] == content


@pytest.mark.parametrize(
    "form",
    [{}, {"content": ""}, {"content": " "}, {"content": "\n\t \r\n"}, {"content": "x" * 4001},
     {"title": "wrong field"}],
    ids=["missing", "empty", "space", "whitespace", "4001", "wrong-field"],
)
@pytest.mark.gen_test
async def test_send_bad_content_is_400_and_stores_nothing(make_user, form):
    alice = await make_user()
    chat_id = await create_chat(alice)
    assert_error(await alice.post(f"/api/chats/{chat_id}", form), 400)
    assert await history(alice, chat_id) == []
    assert await send(alice, chat_id) == 1  # no id was used up


@pytest.mark.gen_test
async def test_send_to_unknown_chat_is_404_and_to_others_chat_is_403(make_user):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    assert_error(await stranger.post(f"/api/chats/{chat_id + 1000}", {"content": "hi"}), 404)
    assert_error(await stranger.post(f"/api/chats/{chat_id}", {"content": "hi"}), 403)
    assert await history(alice, chat_id) == []


@pytest.mark.gen_test
async def test_read_unknown_chat_is_404_and_others_chat_is_403(make_user):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "private")
    assert_error(await stranger.get(f"/api/chats/{chat_id + 1000}"), 404)
    body = assert_error(await stranger.get(f"/api/chats/{chat_id}"), 403)
    assert "private" not in body


# Paging


@pytest.mark.gen_test
async def test_default_page_is_the_newest_100(make_user):
    alice, chat_id = await chat_with_messages(make_user, 0)
    await asyncio.gather(*(send(alice, chat_id) for _ in range(130)))
    assert await history_ids(alice, chat_id) == list(range(31, 131))
    assert await history_ids(alice, chat_id, limit=1000) == list(range(1, 131))


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"limit": 3}, [8, 9, 10]),
        ({"limit": 1}, [10]),
        ({"limit": 1000}, list(range(1, 11))),
        ({"before": 5}, [1, 2, 3, 4]),
        ({"before": 5, "limit": 2}, [3, 4]),
        ({"before": 1}, []),
        ({"before": 999}, list(range(1, 11))),
        ({"after": 5}, [6, 7, 8, 9, 10]),
        ({"after": 5, "limit": 2}, [6, 7]),
        ({"after": 10}, []),
        ({"after": 2, "before": 9}, [3, 4, 5, 6, 7, 8]),
        ({"after": 2, "before": 9, "limit": 3}, [3, 4, 5]),
        ({"after": 4, "before": 5}, []),
        ({"after": 7, "before": 3}, []),
    ],
)
@pytest.mark.gen_test
async def test_history_paging(make_user, params, expected):
    alice, chat_id = await chat_with_messages(make_user, 10)
    messages = await history(alice, chat_id, **params)
    assert [m["id"] for m in messages] == expected
    assert [m["content"] for m in messages] == [f"m{n}" for n in expected]


@pytest.mark.gen_test
async def test_paging_back_and_forth_covers_history_once(make_user):
    alice, chat_id = await chat_with_messages(make_user, 7)
    pages, before = [], None
    while True:
        page = await history_ids(alice, chat_id, limit=3, **({"before": before} if before else {}))
        if not page:
            break
        pages.insert(0, page)
        before = page[0]
    assert pages == [[1], [2, 3, 4], [5, 6, 7]]
    assert await history_ids(alice, chat_id, after=4, limit=2) == [5, 6]


@pytest.mark.parametrize("field", ["limit", "before", "after"])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", " 1", "1e3", "0x10"])
@pytest.mark.gen_test
async def test_bad_paging_values_are_400(make_user, field, value):
    alice, chat_id = await chat_with_messages(make_user, 2)
    assert_error(await alice.get(f"/api/chats/{chat_id}", params={field: value}), 400)


@pytest.mark.parametrize("limit", ["1001", "99999"])
@pytest.mark.gen_test
async def test_limit_over_1000_is_400(make_user, limit):
    alice, chat_id = await chat_with_messages(make_user, 1)
    assert_error(await alice.get(f"/api/chats/{chat_id}", params={"limit": limit}), 400)


# Deleting


@pytest.mark.gen_test
async def test_delete_own_message(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    for text in ("keep", "remove", "keep too"):
        await send(alice, chat_id, text)

    response = await alice.delete(f"/api/chats/{chat_id}", params={"id": 2})
    assert assert_ok(response) == {"status": "ok"}
    assert [(m["id"], m["content"]) for m in await history(bob, chat_id)] == [(1, "keep"), (3, "keep too")]
    assert await send(bob, chat_id) == 4  # ids are never reused
    assert_error(await alice.delete(f"/api/chats/{chat_id}", params={"id": 2}), 404)


@pytest.mark.gen_test
async def test_delete_someone_elses_message_is_403(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(bob, chat_id, "bob's words")
    # Not even the chat's owner may delete another member's message.
    assert_error(await alice.delete(f"/api/chats/{chat_id}", params={"id": 1}), 403)
    assert [m["content"] for m in await history(alice, chat_id)] == ["bob's words"]


@pytest.mark.gen_test
async def test_delete_message_errors(make_user):
    alice, stranger = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "mine")
    path = f"/api/chats/{chat_id}"

    assert_error(await alice.delete(path, params={"id": 99}), 404)
    assert_error(await stranger.delete(f"/api/chats/{chat_id + 1000}", params={"id": 1}), 404)
    assert_error(await stranger.delete(path, params={"id": 1}), 403)
    for params in (None, {"id": ""}, {"id": "abc"}, {"id": "0"}, {"id": "-1"}, {"id": "1.5"}):
        assert_error(await alice.delete(path, params=params), 400)
    assert [m["content"] for m in await history(alice, chat_id)] == ["mine"]


@pytest.mark.gen_test
async def test_former_member_cannot_delete_their_old_message(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    await send(bob, chat_id, "said before leaving")
    assert_ok(await bob.delete("/api/chats", params={"chat_id": chat_id}))
    assert_error(await bob.delete(f"/api/chats/{chat_id}", params={"id": 1}), 403)
    (message,) = await history(alice, chat_id)
    assert (message["sender_id"], message["content"]) == (bob.user_id, "said before leaving")


# Concurrency


@pytest.mark.gen_test
async def test_fifty_concurrent_sends_get_distinct_ordered_ids(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    senders = [alice if n % 2 else bob for n in range(50)]
    responses = await asyncio.gather(
        *(who.post(f"/api/chats/{chat_id}", {"content": f"c{n}"}) for n, who in enumerate(senders))
    )
    assert [r.code for r in responses] == [201] * 50, [r for r in responses if r.code != 201]
    ids = [r.json()["id"] for r in responses]
    assert sorted(ids) == list(range(1, 51))

    messages = await history(alice, chat_id, limit=1000)
    assert [m["id"] for m in messages] == list(range(1, 51))
    by_content = {m["content"]: m for m in messages}
    for n, (who, message_id) in enumerate(zip(senders, ids)):
        assert by_content[f"c{n}"]["id"] == message_id
        assert by_content[f"c{n}"]["sender_id"] == who.user_id
