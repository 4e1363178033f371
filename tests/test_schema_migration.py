"""Upgrading data written by the first layout (schema 1: no chat logs) to
the current one (through schema 2, then 3: read markers): nothing lost,
every chat's log starts empty at seq 0, everything before counts as read,
and running the upgrade again changes nothing. (2 -> 3 on its own:
test_schema_migration_3.py.)"""

import json

import pytest

from storage import keys
from storage.migrations import SCHEMA_VERSION

from .api_helpers import history, members_of
from .apiclient import ApiClient
from .logclient import Listener, log_page
from .processes import RunningServer

SCHEMA_KEY = "schema:version"


def _summary_as_lua_wrote_it(summary: dict) -> str:
    """cjson's encoding: its own key order, and `/` escaped."""
    return json.dumps(dict(sorted(summary.items())), ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")


def write_old_chat(sync_redis, title: str, created_at: str, members: list, messages: list[tuple], last_id: int) -> dict:
    """A chat as create_chat.lua, add_member.lua, send_message.lua and
    delete_message.lua of schema 1 left it, written with plain commands.
    `messages`: (id, sender, time, content) of the messages still there
    (ids missing below last_id were deleted). Returns what GET /api/chats
    showed of it."""
    chat_id = sync_redis.incr(keys.CHAT_ID_SEQ)
    owner = members[0]
    chat = {"id": chat_id, "title": title, "owner_id": owner.user_id, "created_at": created_at,
            "last_message_id": last_id, "join_seq": len(members)}  # fmt: skip
    if messages:
        chat["last_message_time"] = messages[-1][2]
    sync_redis.hset(keys.chat_key(chat_id), mapping=chat)
    for order, member in enumerate(members, 1):
        sync_redis.zadd(keys.chat_members_key(chat_id), {member.user_id: order})
        sync_redis.set(keys.chat_member_key(chat_id, member.user_id), "1")
        sync_redis.sadd(keys.user_chats_key(member.user_id), chat_id)
    for message_id, sender, time, content in messages:
        tail = json.dumps({"content": content}, ensure_ascii=False, separators=(",", ":"))[1:]
        text = '{"id":' + str(message_id) + ',"sender_id":' + str(sender.user_id) + ',"time":"' + time + '",' + tail
        sync_redis.zadd(keys.chat_messages_key(chat_id), {text: message_id})
    newest = messages[-1] if messages else None
    summary = {
        "id": chat_id, "title": title, "owner_id": owner.user_id, "created_at": created_at,
        "last_message": newest[3] if newest else None, "last_message_id": newest[0] if newest else None,
        "last_message_time": newest[2] if newest else None, "sender_id": newest[1].user_id if newest else None,
    }  # fmt: skip
    sync_redis.set(keys.chat_summary_key(chat_id), _summary_as_lua_wrote_it(summary))
    return summary


def old_messages(rows: list[tuple]) -> list[dict]:
    return [{"id": i, "sender_id": s.user_id, "time": t, "content": c} for i, s, t, c in rows]


def snapshot(sync_redis) -> dict:
    """Every key and its value, by type."""
    readers = {
        "string": sync_redis.get,
        "hash": sync_redis.hgetall,
        "set": lambda key: sorted(sync_redis.smembers(key)),
        "zset": lambda key: sync_redis.zrange(key, 0, -1, withscores=True),
        "list": lambda key: sync_redis.lrange(key, 0, -1),
        "stream": lambda key: sync_redis.xrange(key),
    }
    return {key: readers[sync_redis.type(key)](key) for key in sync_redis.keys("*")}


def without_log_fields(chat: dict) -> dict:
    """A listed chat without what later layouts added (its log's position, the caller's read marker, edits)."""
    later = ("seq", "epoch", "last_read_id", "unread_count", "last_message_edited_at")
    return {k: v for k, v in chat.items() if k not in later}


async def write_old_data(sync_redis, alice, bob) -> tuple[int, int, list[tuple], list[dict]]:
    """Two chats of schema 1: one with a history (a message deleted), one empty; no schema:version."""
    rows = [
        (1, alice, "2026-01-02T10:00:00.000Z", "hello / there"),
        (2, bob, "2026-01-02T10:00:01.500Z", '  "quoted" é 😀\n'),
        (4, alice, "2026-01-02T10:00:03.000Z", "after a deletion"),
    ]  # message 3 was deleted
    talk = write_old_chat(sync_redis, "talk", "2026-01-02T09:59:00.000Z", [alice, bob], rows, 4)
    empty = write_old_chat(sync_redis, "empty/room", "2026-01-03T08:00:00.000Z", [alice], [], 0)
    sync_redis.delete(SCHEMA_KEY)
    return talk["id"], empty["id"], rows, [empty, talk]  # newest activity first


@pytest.mark.gen_test(timeout=60)
async def test_upgrading_old_chats_loses_nothing_and_starts_their_logs_at_zero(base_url, make_user, storage, sync_redis):
    alice, bob = await make_user(), await make_user()
    talk, empty, rows, listed = await write_old_data(sync_redis, alice, bob)
    assert sync_redis.get(SCHEMA_KEY) is None
    old_hashes = {chat_id: sync_redis.hgetall(keys.chat_key(chat_id)) for chat_id in (talk, empty)}

    assert await storage.upgrade() == 1  # the version the data was in
    assert sync_redis.get(SCHEMA_KEY) == str(SCHEMA_VERSION)
    upgraded = snapshot(sync_redis)
    assert await storage.upgrade() == SCHEMA_VERSION
    assert snapshot(sync_redis) == upgraded  # a second run changes nothing

    epochs = {}
    for chat_id, old in old_hashes.items():
        now = sync_redis.hgetall(keys.chat_key(chat_id))
        new_fields = ("log_seq", "log_epoch", "log_replid", "read_markers", "creator_id")
        assert {k: v for k, v in now.items() if k not in new_fields} == old
        assert now["log_seq"] == "0" and now["log_epoch"] and now["read_markers"] == "1", now
        assert now["creator_id"] == old["owner_id"]  # schema 4: the owner stands in for the creator
        epochs[chat_id] = now["log_epoch"]

    chats = (await alice.get("/api/chats")).json()["chats"]
    assert [without_log_fields(c) for c in chats] == listed
    assert [(c["seq"], c["epoch"]) for c in chats] == [(0, epochs[empty]), (0, epochs[talk])]
    # Everything before the upgrade counts as read.
    assert [(c["last_read_id"], c["unread_count"]) for c in chats] == [(0, 0), (4, 0)]
    assert [without_log_fields(c) for c in (await bob.get("/api/chats")).json()["chats"]] == [listed[1]]
    assert await history(bob, talk) == old_messages(rows)
    assert await history(alice, empty) == []
    assert await members_of(bob, talk) == (alice.user_id, [alice.user_id, bob.user_id])
    for chat_id in (talk, empty):
        assert await log_page(alice, chat_id, 0) == {"seq": 0, "epoch": epochs[chat_id], "events": []}

    # The first change after the upgrade is seq 1; message ids go on from the old counter.
    socket = await Listener.open(base_url, bob, sync_redis)
    response = await alice.post(f"/api/chats/{talk}", {"content": "first in the log"})
    assert response.code == 201 and response.json()["id"] == 5, response
    await socket.wait_for_seq(talk, 1)
    (event,) = socket.of_chat(talk)
    assert {k: event[k] for k in ("type", "chat_id", "seq")} == {"type": "message", "chat_id": talk, "seq": 1}
    assert event["message"]["id"] == 5 and event["message"]["content"] == "first in the log"
    assert (await log_page(bob, talk, 0))["events"] == [event]
    assert await history(bob, talk) == old_messages(rows) + [event["message"]]
    summary = next(c for c in (await bob.get("/api/chats")).json()["chats"] if c["id"] == talk)
    assert (summary["seq"], summary["epoch"], summary["last_message"]) == (1, epochs[talk], "first in the log")
    assert (summary["last_read_id"], summary["unread_count"]) == (4, 1)


@pytest.mark.gen_test(timeout=60)
async def test_upgrading_leaves_chats_of_the_new_layout_alone(make_user, storage, sync_redis):
    alice, bob = await make_user(), await make_user()
    new_chat = (await alice.post("/api/chats", {"title": "already logged"})).json()["id"]
    await alice.post(f"/api/chats/{new_chat}/members", {"user_id": bob.user_id})
    await alice.post(f"/api/chats/{new_chat}", {"content": "seq 2"})
    before = await log_page(alice, new_chat, 0)
    talk, _, _, _ = await write_old_data(sync_redis, alice, bob)
    await storage.upgrade()
    assert await log_page(alice, new_chat, 0) == before  # same seq, same epoch, same events
    assert (await log_page(alice, talk, 0))["seq"] == 0


@pytest.mark.gen_test(timeout=90)
async def test_run_py_upgrades_old_data_when_it_starts(make_user, sync_redis, redis_url, tmp_path, http_client):
    alice, bob = await make_user(), await make_user()
    talk, empty, rows, listed = await write_old_data(sync_redis, alice, bob)
    server = RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off")
    try:
        assert sync_redis.get(SCHEMA_KEY) == str(SCHEMA_VERSION)
        there = ApiClient(http_client, server.base)
        there.cookies, there.user_id = dict(alice.cookies), alice.user_id
        chats = (await there.get("/api/chats")).json()["chats"]
        assert [without_log_fields(c) for c in chats] == listed
        assert all(c["seq"] == 0 and c["epoch"] for c in chats), chats
        assert await history(there, talk) == old_messages(rows)
        assert (await there.post(f"/api/chats/{talk}", {"content": "new"})).code == 201
        page = await log_page(there, talk, 0)
        assert [e["seq"] for e in page["events"]] == [1] and page["epoch"] == chats[1]["epoch"]
    finally:
        assert server.stop() == 0
