"""One message at /api/chats/{chat_id}/messages/{message_id} (issue 11):
reading, editing (sender only, `edited_at`, `message_edited` events to every
member on every process, the summary), deleting; the log replaying edits as
they were sent, and a deletion that leaves none of the old contents behind."""

import asyncio
import dataclasses

import orjson
import pytest

from storage import keys

from .api_helpers import TIME_RE, assert_error, assert_ok, chat_with, client_with_cookies, history, send, summary
from .logclient import GRACE_SECS, Listener, assert_contiguous, newest_seq, whole_log
from .processes import user_on
from .redis_clients import settle_pubsub

MESSAGE_FIELDS = ["id", "sender_id", "time", "content"]


@pytest.fixture
def settings(settings, request):
    """Rate limits on only for a test marked @pytest.mark.limits(...)."""
    marker = request.node.get_closest_marker("limits")
    return dataclasses.replace(settings, rate_limits=True, **marker.kwargs) if marker else settings


def at(chat_id, message_id) -> str:
    return f"/api/chats/{chat_id}/messages/{message_id}"


async def edit(client, chat_id: int, message_id: int, content: str) -> None:
    assert assert_ok(await client.put(at(chat_id, message_id), {"content": content})) == {"status": "ok"}


async def one(client, chat_id: int, message_id: int) -> dict:
    """The message as GET on its path shows it."""
    response = await client.get(at(chat_id, message_id))
    assert response.code == 200, response
    body = response.json()
    assert list(body) == ["message"], body
    return body["message"]


def stub_of(message: dict) -> dict:
    """A deleted message as the log replays it."""
    return {k: message[k] for k in ("id", "sender_id", "time")} | {"deleted": True}


# Editing, reading and deleting one message.


@pytest.mark.gen_test
async def test_the_sender_edits_and_every_member_reads_the_edited_message(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    first, second = await send(alice, chat_id, "helo"), await send(bob, chat_id, "hi")
    before = await one(bob, chat_id, first)
    await edit(alice, chat_id, first, "  hello 😀 \"quoted\" \\ / é\n")

    messages = await history(bob, chat_id)
    edited = messages[0]
    assert list(edited) == MESSAGE_FIELDS + ["edited_at"], edited
    assert {k: edited[k] for k in MESSAGE_FIELDS} == {**before, "content": "  hello 😀 \"quoted\" \\ / é\n"}
    assert TIME_RE.match(edited["edited_at"]) and edited["edited_at"] >= edited["time"], edited
    assert list(messages[1]) == MESSAGE_FIELDS and messages[1]["content"] == "hi"  # the other one untouched
    for reader in (alice, bob):
        assert await one(reader, chat_id, first) == edited
        assert await one(reader, chat_id, second) == messages[1]

    await edit(alice, chat_id, first, "hello again")
    again = (await history(alice, chat_id))[0]
    assert again["content"] == "hello again" and again["edited_at"] >= edited["edited_at"], again
    # The edited message keeps its place: ids, paging and cursors are unchanged.
    third = await send(alice, chat_id, "third")
    await edit(bob, chat_id, second, "hi there")
    assert [m["id"] for m in await history(alice, chat_id)] == [first, second, third]
    assert [m["content"] for m in await history(alice, chat_id, before=third)] == ["hello again", "hi there"]
    assert [m["content"] for m in await history(alice, chat_id, after=first, limit=1)] == ["hi there"]


@pytest.mark.gen_test
async def test_the_same_content_again_changes_nothing(base_url, make_user, sync_redis):
    alice = await make_user()
    chat_id = await chat_with(alice)
    message_id = await send(alice, chat_id, "as it was")
    await edit(alice, chat_id, message_id, "as it was")
    assert await one(alice, chat_id, message_id) == (await history(alice, chat_id))[0]
    assert "edited_at" not in await one(alice, chat_id, message_id)
    assert (await newest_seq(alice, chat_id))[0] == 1  # no event for a change that did not happen


@pytest.mark.gen_test
async def test_edit_errors_come_in_the_documented_order(make_user, new_client, settings):
    alice, bob, stranger = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    mine = await send(alice, chat_id, "original")
    gone = await send(alice, chat_id, "soon gone")
    assert_ok(await alice.delete(at(chat_id, gone)))
    too_long = "x" * (settings.content_max_chars + 1)
    unknown_chat = chat_id + 1000

    anonymous = client_with_cookies(new_client, {})
    cases = [
        (anonymous, "x", "y", None, 401),  # the session before the input
        (alice, "x", mine, "ok", 400),
        (alice, "0", mine, "ok", 400),
        (alice, chat_id, "abc", "ok", 400),
        (alice, chat_id, mine, None, 400),
        (alice, chat_id, mine, "   \n\t", 400),
        (alice, chat_id, mine, too_long, 400),
        (stranger, unknown_chat, mine, "", 400),  # the content before the chat
        (stranger, unknown_chat, mine, "ok", 404),  # the chat before membership
        (stranger, chat_id, 999, "ok", 403),  # membership before the message
        (alice, chat_id, 999, "ok", 404),
        (alice, chat_id, gone, "ok", 404),  # a deleted message is no more
        (bob, chat_id, mine, "mine now", 403),  # only the sender edits
    ]
    for client, chat, message, content, status in cases:
        response = await client.put(at(chat, message), None if content is None else {"content": content})
        assert_error(response, status)
    assert [(m["content"], "edited_at" in m) for m in await history(alice, chat_id)] == [("original", False)]
    response = await alice.post(at(chat_id, mine), {"content": "x"})
    assert_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}


@pytest.mark.gen_test
async def test_read_and_delete_errors_come_in_the_documented_order(make_user, new_client):
    alice, bob, stranger = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    mine = await send(alice, chat_id, "alice's")
    anonymous = client_with_cookies(new_client, {})
    for method in ("GET", "DELETE"):
        cases = [
            (anonymous, chat_id, mine, 401),
            (alice, "x", mine, 400),
            (alice, chat_id, "0", 400),
            (stranger, chat_id + 1000, mine, 404),
            (stranger, chat_id, 999, 403),
            (alice, chat_id, 999, 404),
        ]
        for client, chat, message, status in cases:
            assert_error(await client.request(method, at(chat, message)), status)
    assert_error(await bob.delete(at(chat_id, mine)), 403)  # only the sender deletes
    assert (await one(bob, chat_id, mine))["content"] == "alice's"  # but anyone reads


@pytest.mark.gen_test(timeout=60)
async def test_deleting_on_the_new_path_and_the_old_one(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)  # seq 1
    socket = await Listener.open(base_url, bob, sync_redis)
    first, second, kept = [await send(alice, chat_id, text) for text in ("one", "two", "three")]  # 2, 3, 4
    assert assert_ok(await alice.delete(at(chat_id, first))) == {"status": "ok"}  # 5
    assert_ok(await alice.delete(f"/api/chats/{chat_id}", {"id": second}))  # 6
    assert [m["id"] for m in await history(bob, chat_id)] == [kept]
    for message_id in (first, second):
        assert_error(await bob.get(at(chat_id, message_id)), 404)
        assert_error(await alice.delete(at(chat_id, message_id)), 404)
    await socket.wait_for_seq(chat_id, 6)
    assert socket.of_chat(chat_id)[-2:] == [
        {"type": "message_deleted", "chat_id": chat_id, "seq": 5, "message_id": first},
        {"type": "message_deleted", "chat_id": chat_id, "seq": 6, "message_id": second},
    ]


# Events, the log and the summary.


@pytest.mark.gen_test(timeout=60)
async def test_every_members_sockets_get_the_whole_edited_message(base_url, make_user, sync_redis):
    alice, bob, carol, stranger = [await make_user() for _ in range(4)]
    chat_id = await chat_with(alice, bob, carol)  # seq 1, 2
    message_id = await send(bob, chat_id, "typo")  # 3
    settle_pubsub(sync_redis)
    sockets = [await Listener.open(base_url, user) for user in (alice, alice, bob, carol, stranger)]
    await edit(bob, chat_id, message_id, "fixed")  # 4
    edited = await one(alice, chat_id, message_id)
    expected = {"type": "message_edited", "chat_id": chat_id, "seq": 4, "message": edited}
    for socket in sockets[:4]:
        await socket.wait_for_seq(chat_id, 4)
    await asyncio.sleep(GRACE_SECS)
    for socket in sockets[:4]:
        assert socket.of_chat(chat_id) == [expected]
        assert list(socket.of_chat(chat_id)[0]) == ["type", "chat_id", "seq", "message"]
        assert list(socket.of_chat(chat_id)[0]["message"]) == MESSAGE_FIELDS + ["edited_at"]
    assert sockets[4].of_chat(chat_id) == []  # not a member: nothing


@pytest.mark.gen_test
async def test_the_summary_shows_an_edit_of_the_newest_message_only(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    assert (await summary(bob, chat_id))["last_message_edited_at"] is None  # no message yet
    older, newest = await send(alice, chat_id, "older"), await send(bob, chat_id, "newest")
    await edit(alice, chat_id, older, "older, edited")
    for user in (alice, bob):
        listed = await summary(user, chat_id)
        assert (listed["last_message"], listed["last_message_edited_at"]) == ("newest", None), listed
    await edit(bob, chat_id, newest, "newest, edited")
    message = await one(bob, chat_id, newest)
    for user in (alice, bob):
        listed = await summary(user, chat_id)
        assert listed["last_message"] == "newest, edited" and listed["last_message_id"] == newest, listed
        assert listed["last_message_edited_at"] == message["edited_at"]
        assert listed["last_message_time"] == message["time"]  # still when it was sent
        assert listed["seq"] == 5
    assert_ok(await bob.delete(at(chat_id, newest)))  # the edited older one is the newest again
    listed = await summary(alice, chat_id)
    assert listed["last_message"] == "older, edited"
    assert listed["last_message_edited_at"] == (await one(alice, chat_id, older))["edited_at"]


@pytest.mark.gen_test
async def test_a_summary_stored_before_edits_existed_lists_null(make_user, sync_redis):
    alice = await make_user()
    chat_id = await chat_with(alice)
    await send(alice, chat_id, "from before")
    key = keys.chat_summary_key(chat_id)
    stored = orjson.loads(sync_redis.get(key))
    del stored["last_message_edited_at"]
    sync_redis.set(key, orjson.dumps(stored))
    listed = await summary(alice, chat_id)
    assert listed["last_message"] == "from before" and listed["last_message_edited_at"] is None, listed


@pytest.mark.gen_test(timeout=60)
async def test_the_log_replays_each_version_as_it_was_sent(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)  # seq 1
    socket = await Listener.open(base_url, bob, sync_redis)
    message_id = await send(alice, chat_id, "v1")  # 2
    await edit(alice, chat_id, message_id, "v2")  # 3
    other = await send(bob, chat_id, "other")  # 4
    await edit(alice, chat_id, message_id, "v3")  # 5
    assert_ok(await alice.put(f"/api/chats/{chat_id}", {"title": "renamed"}))  # 6
    await edit(bob, chat_id, other, "other, edited")  # 7
    await socket.wait_for_seq(chat_id, 7)
    await asyncio.sleep(GRACE_SECS)

    got = socket.of_chat(chat_id)
    assert_contiguous([e["seq"] for e in got], 2, 7)
    assert [e["type"] for e in got] == [
        "message", "message_edited", "message", "message_edited", "chat_renamed", "message_edited",
    ]  # fmt: skip
    contents = [e["message"]["content"] for e in got if "message" in e]
    assert contents == ["v1", "v2", "other", "v3", "other, edited"]
    assert "edited_at" not in got[0]["message"] and got[1]["message"]["edited_at"] <= got[3]["message"]["edited_at"]
    assert got[3]["message"] == await one(bob, chat_id, message_id)
    log = await whole_log(bob, chat_id, 1)
    assert [list(e.items()) for e in log["events"]] == [list(e.items()) for e in got]  # field order too
    later = await Listener.open(base_url, alice, sync_redis)  # a socket resuming from seq 1
    ack, _ = await later.resume(chat_id, 1, log["epoch"])
    assert ack["seq"] == 7 and later.of_chat(chat_id) == got, later.of_chat(chat_id)


@pytest.mark.gen_test(timeout=60)
async def test_deleting_an_edited_message_leaves_none_of_its_contents(base_url, make_user, sync_redis):
    alice = await make_user()
    chat_id = await chat_with(alice)
    socket = await Listener.open(base_url, alice, sync_redis)
    doomed = await send(alice, chat_id, "secret one")  # id 1, seq 1
    for n in range(2, 11):
        await send(alice, chat_id, f"filler {n}")  # ids 2..10, seq 2..10
    await edit(alice, chat_id, doomed, "secret two")  # 11
    await edit(alice, chat_id, 10, "filler 10, edited")  # 12: id 10 starts like id 1
    await edit(alice, chat_id, doomed, "secret three")  # 13
    original = (await one(alice, chat_id, doomed)) | {"content": "secret one"}
    assert_ok(await alice.delete(at(chat_id, doomed)))  # 14
    await socket.wait_for_seq(chat_id, 14)
    sent = socket.of_chat(chat_id)
    contents = [e["message"]["content"] for e in sent if e["seq"] in (1, 11, 13)]
    assert contents == ["secret one", "secret two", "secret three"]

    prior = sync_redis.zrange(keys.chat_log_prior_key(chat_id), 0, -1, withscores=True)
    assert "secret" not in str(prior), prior
    assert not [m for m in sync_redis.zrange(keys.chat_messages_key(chat_id), 0, -1) if "secret" in m]
    replayed = (await whole_log(alice, chat_id))["events"]
    assert "secret" not in orjson.dumps(replayed).decode()
    # Every event of the deleted message keeps its place, without the content.
    stub = stub_of(original)
    expected = [{**e, "message": stub} if e.get("message", {}).get("id") == doomed else e for e in sent]
    assert replayed == expected
    assert replayed[0] == {"type": "message", "chat_id": chat_id, "seq": 1, "message": stub}
    assert replayed[12]["type"] == "message_edited" and replayed[12]["message"] == stub
    # The other edited message's versions are kept: its first event still shows the first text.
    assert [replayed[n]["message"]["content"] for n in (9, 11)] == ["filler 10", "filler 10, edited"]


@pytest.mark.gen_test
@pytest.mark.limits(message_burst=2, messages_per_sec=0.2)
async def test_an_edit_counts_against_the_message_rate(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    message_id = await send(alice, chat_id, "one")
    await edit(alice, chat_id, message_id, "two")
    response = await alice.put(at(chat_id, message_id), {"content": "three"})
    assert_error(response, 429)
    assert int(response.headers["Retry-After"]) >= 1
    assert_error(await alice.post(f"/api/chats/{chat_id}", {"content": "nor a send"}), 429)
    assert (await one(bob, chat_id, message_id))["content"] == "two"
    await send(bob, chat_id, "bob has his own bucket")


# Two processes.


@pytest.mark.gen_test(timeout=120)
async def test_sockets_on_both_processes_get_the_edit(two_servers, http_client, sync_redis):
    first, second = two_servers
    alice = await user_on(http_client, first)
    bob = await user_on(http_client, second)
    chat_id = await chat_with(alice, bob)  # seq 1
    message_id = await send(alice, chat_id, "draft")  # 2
    settle_pubsub(sync_redis)
    sockets = [
        await Listener.open(first.base, alice), await Listener.open(second.base, alice),
        await Listener.open(first.base, bob), await Listener.open(second.base, bob),
    ]  # fmt: skip
    await edit(alice, chat_id, message_id, "final")  # 3, through the first process
    for socket in sockets:
        await socket.wait_for_seq(chat_id, 3, timeout=30)
    await asyncio.sleep(GRACE_SECS)
    log = (await whole_log(bob, chat_id, 2))["events"]
    assert len(log) == 1 and log[0]["type"] == "message_edited" and log[0]["message"]["content"] == "final", log
    assert log[0]["message"] == await one(bob, chat_id, message_id)
    for socket in sockets:
        assert socket.of_chat(chat_id) == log
