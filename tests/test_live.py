"""Live delivery over /api/ws, in one server process, against real Redis pub/sub."""

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError

from storage import keys

from .redis_clients import settle_pubsub
from .wsclient import closed, next_event, open_socket, request


@pytest.fixture(autouse=True)
def _settle_before_sockets(sync_redis, monkeypatch):
    """Makes socket_of wait, on a Redis Cluster, for the events of the test's setup."""
    monkeypatch.setattr(f"{__name__}.settle_events", lambda: settle_pubsub(sync_redis))


def settle_events() -> None:
    """Replaced in each test by _settle_before_sockets."""


async def chat_of(owner, *members, title="room"):
    chat_id = (await owner.post("/api/chats", {"title": title})).json()["id"]
    for member in members:
        assert (await owner.post(f"/api/chats/{chat_id}/members", {"user_id": member.user_id})).code == 201
    return chat_id


async def socket_of(client, base_url):
    # On a Redis Cluster an event reaches a subscriber on another node after
    # its publisher's reply: without this, a socket opened right after the
    # setup could still get the setup's events (on one server it never does).
    settle_events()
    return await open_socket(base_url, client.cookies)


async def send(client, chat_id, content):
    response = await client.post(f"/api/chats/{chat_id}", {"content": content})
    assert response.code == 201, response
    return response.json()["id"]


@pytest.mark.gen_test
async def test_upgrade_without_a_valid_session_is_refused_with_json_401(base_url, make_user):
    alice = await make_user()
    for cookies in ({}, {"user_id": str(alice.user_id), "token": "x" * 43}, {"user_id": "1"}):
        with pytest.raises(HTTPClientError) as refused:
            await open_socket(base_url, cookies, ready=False)
        assert refused.value.code == 401
        assert json.loads(refused.value.response.body)["error"].startswith("authentication required")


@pytest.mark.gen_test
async def test_members_get_each_message_as_history_shows_it(base_url, make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    alice_socket, bob_socket = await socket_of(alice, base_url), await socket_of(bob, base_url)
    message_id = await send(alice, chat_id, "  hello 😀\n")
    (stored,) = (await bob.get(f"/api/chats/{chat_id}")).json()["messages"]
    for socket in (alice_socket, bob_socket):
        # seq 1 was bob's member_added, before the sockets opened.
        assert await next_event(socket) == {"type": "message", "chat_id": chat_id, "seq": 2, "message": stored}
    assert stored["id"] == message_id and stored["content"] == "  hello 😀\n"


@pytest.mark.gen_test
async def test_every_socket_of_a_user_gets_the_event(base_url, make_user, new_client):
    alice = await make_user()
    chat_id = await chat_of(alice)
    second_login = new_client()
    await second_login.post("/api/login", {"name": alice.name, "password": "correct horse"})
    sockets = [await socket_of(alice, base_url), await socket_of(alice, base_url), await socket_of(second_login, base_url)]
    await send(alice, chat_id, "to all of me")
    for socket in sockets:
        assert (await next_event(socket))["message"]["content"] == "to all of me"


@pytest.mark.gen_test
async def test_a_stranger_never_receives(base_url, make_user):
    alice, bob, eve = await make_user(), await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    eve_chat = await chat_of(eve, title="eve's own")
    eve_socket = await socket_of(eve, base_url)
    await send(alice, chat_id, "secret")
    await alice.put(f"/api/chats/{chat_id}", {"title": "renamed"})
    await alice.delete(f"/api/chats/{chat_id}/members", {"user_id": bob.user_id})
    await send(eve, eve_chat, "sentinel")
    event = await next_event(eve_socket)
    assert event["chat_id"] == eve_chat and event["message"]["content"] == "sentinel"
    # Across chats nothing is ordered: give the others' events time to arrive, if they were to.
    await send(alice, chat_id, "later")
    await asyncio.sleep(0.3)
    with pytest.raises(asyncio.TimeoutError):
        await next_event(eve_socket, timeout=0.2)


@pytest.mark.gen_test
async def test_a_member_who_leaves_is_told_and_then_hears_nothing(base_url, make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    own_chat = await chat_of(bob, title="bob's own")
    bob_socket = await socket_of(bob, base_url)
    assert (await bob.delete("/api/chats", {"chat_id": chat_id})).code == 200
    assert await next_event(bob_socket) == {
        "type": "member_removed", "chat_id": chat_id, "seq": 2, "user_id": bob.user_id, "owner_id": alice.user_id,
    }  # fmt: skip
    await send(alice, chat_id, "after bob left")
    await send(bob, own_chat, "sentinel")
    assert (await next_event(bob_socket))["message"]["content"] == "sentinel"


@pytest.mark.gen_test
async def test_chat_changes_reach_all_members(base_url, make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    alice_socket, bob_socket = await socket_of(alice, base_url), await socket_of(bob, base_url)
    carol_socket = await socket_of(carol, base_url)

    message_id = await send(bob, chat_id, "oops")
    await bob.delete(f"/api/chats/{chat_id}", {"id": message_id})
    await alice.put(f"/api/chats/{chat_id}", {"title": "  new title "})
    await bob.post(f"/api/chats/{chat_id}/members", {"name": carol.name})
    await alice.delete(f"/api/chats/{chat_id}/members", {"user_id": bob.user_id})
    await alice.delete("/api/chats", {"chat_id": chat_id})  # carol inherits the chat

    expected = [
        ("message", {"chat_id": chat_id}),
        ("message_deleted", {"chat_id": chat_id, "message_id": message_id}),
        ("chat_renamed", {"chat_id": chat_id, "title": "new title"}),
        ("member_added", {"chat_id": chat_id, "user_id": carol.user_id}),
        ("member_removed", {"chat_id": chat_id, "user_id": bob.user_id, "owner_id": alice.user_id}),
        ("member_removed", {"chat_id": chat_id, "user_id": alice.user_id, "owner_id": carol.user_id}),
    ]
    for kind, fields in expected:
        event = await next_event(alice_socket)
        assert event["type"] == kind and fields.items() <= event.items(), event
    bob_saw = [(await next_event(bob_socket))["type"] for _ in range(5)]
    assert bob_saw == ["message", "message_deleted", "chat_renamed", "member_added", "member_removed"]
    carol_saw = [await next_event(carol_socket) for _ in range(3)]
    assert [e["type"] for e in carol_saw] == ["member_added", "member_removed", "member_removed"]


@pytest.mark.gen_test
async def test_creating_a_chat_tells_the_creator(base_url, make_user):
    alice = await make_user()
    socket = await socket_of(alice, base_url)
    chat_id = await chat_of(alice, title="fresh")
    assert await next_event(socket) == {"type": "chat_created", "chat_id": chat_id, "title": "fresh"}


@pytest.mark.gen_test
async def test_send_over_the_socket_stores_what_http_would(base_url, make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    alice_socket, bob_socket = await socket_of(alice, base_url), await socket_of(bob, base_url)
    alice_socket.write_message(json.dumps({"op": "send", "chat_id": chat_id, "content": " hi ", "request_id": "r1"}))
    events = [await next_event(alice_socket), await next_event(alice_socket)]
    (ack,) = [e for e in events if e["type"] == "ack"]
    assert ack == {"type": "ack", "request_id": "r1", "chat_id": chat_id, "message_id": 1}
    (stored,) = (await alice.get(f"/api/chats/{chat_id}")).json()["messages"]
    assert stored["content"] == " hi " and stored["sender_id"] == alice.user_id
    assert await next_event(bob_socket) == {"type": "message", "chat_id": chat_id, "seq": 2, "message": stored}


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "frame, http_body, status",
    [
        ({"chat_id": "{stranger_chat}", "content": "let me in"}, {"content": "let me in"}, 403),
        ({"chat_id": 999999, "content": "anyone?"}, {"content": "anyone?"}, 404),
        ({"chat_id": "{own_chat}", "content": "   "}, {"content": "   "}, 400),
        ({"chat_id": "{own_chat}", "content": "x" * 4001}, {"content": "x" * 4001}, 400),
        ({"chat_id": "{own_chat}"}, {}, 400),
        ({"chat_id": "abc", "content": "hi"}, None, 400),
        ({"chat_id": "{own_chat}", "content": ["not", "text"]}, None, 400),
    ],
)
async def test_socket_send_errors_match_http(base_url, make_user, frame, http_body, status):
    alice, stranger = await make_user(), await make_user()
    ids = {"{own_chat}": await chat_of(alice), "{stranger_chat}": await chat_of(stranger, title="theirs")}
    frame = {"op": "send", "request_id": 5, **{k: ids.get(v, v) if isinstance(v, str) else v for k, v in frame.items()}}
    socket = await socket_of(alice, base_url)
    error = await request(socket, frame)
    assert (error["type"], error["request_id"], error["status"]) == ("error", 5, status), error
    if http_body is not None:
        response = await alice.post(f"/api/chats/{frame['chat_id']}", http_body)
        assert (response.code, response.json()["error"]) == (status, error["error"])


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "frame, status, error",
    [
        ("not json", 400, "the frame is not valid JSON"),
        ("[1, 2]", 400, "a frame must be a JSON object"),
        ('{"op": "shout"}', 400, 'unknown op: "send", "resume", "typing" or "watch_presence"'),
        ('{"op": "send", "request_id": {"a": 1}}', 400, "request_id must be a string or an integer"),
        (b"\x00\x01binary", 400, "frames must be text: a JSON object"),
        ("x" * (64 * 1024 + 1), 413, "frame too large: at most 65536 characters"),
    ],
)
async def test_invalid_frames_get_an_error_event_and_the_socket_lives_on(base_url, make_user, frame, status, error):
    alice = await make_user()
    chat_id = await chat_of(alice)
    socket = await socket_of(alice, base_url)
    assert await request(socket, frame) == {"type": "error", "request_id": None, "status": status, "error": error}
    ack = await request(socket, {"op": "send", "chat_id": chat_id, "content": "still here"})
    assert ack["type"] in ("ack", "message")


@pytest.mark.gen_test
async def test_a_frame_past_the_hard_limit_closes_the_socket(base_url, make_user, settings):
    alice = await make_user()
    socket = await socket_of(alice, base_url)
    socket.write_message("x" * (settings.ws_hard_frame_bytes + 1))
    assert await closed(socket) == 1009  # "message too big"


@pytest.mark.gen_test
async def test_logout_closes_that_sessions_sockets_only(base_url, make_user, new_client):
    alice = await make_user()
    other_login = new_client()
    await other_login.post("/api/login", {"name": alice.name, "password": "correct horse"})
    chat_id = await chat_of(alice)
    doomed, survivor = await socket_of(alice, base_url), await socket_of(other_login, base_url)
    assert (await alice.get("/api/logout")).code == 200
    assert await closed(doomed) == 4001
    await send(other_login, chat_id, "still connected")
    assert (await next_event(survivor))["message"]["content"] == "still connected"


@pytest.mark.gen_test
async def test_deleting_the_account_closes_all_its_sockets(base_url, make_user, new_client):
    alice = await make_user()
    other_login = new_client()
    await other_login.post("/api/login", {"name": alice.name, "password": "correct horse"})
    sockets = [await socket_of(alice, base_url), await socket_of(other_login, base_url)]
    assert (await alice.delete(f"/api/user/{alice.user_id}")).code == 200
    for socket in sockets:
        assert await closed(socket) == 4001


@pytest.mark.gen_test(timeout=60)
async def test_losing_the_pubsub_connection_loses_no_later_events(base_url, make_user, sync_redis):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_of(alice, bob)
    bob_socket = await socket_of(bob, base_url)
    assert sync_redis.client_kill_filter(_type="pubsub") >= 1
    await send(alice, chat_id, "during the outage")  # published while nobody listened
    channel = keys.user_events_channel(bob.user_id)
    while sync_redis.pubsub_numsub(channel) != [(channel, 1)]:
        await asyncio.sleep(0.05)
    await send(alice, chat_id, "after the outage")
    # The process resumed the chat from its log by itself: no resync, nothing lost.
    missed, after = await next_event(bob_socket, timeout=15), await next_event(bob_socket)
    assert [missed["message"]["content"], after["message"]["content"]] == ["during the outage", "after the outage"]
    assert after["seq"] == missed["seq"] + 1


@pytest.mark.gen_test(timeout=60)
async def test_a_logout_missed_during_a_pubsub_outage_still_ends_the_socket(base_url, make_user, sync_redis):
    alice = await make_user()
    chat_id = await chat_of(alice)
    socket = await socket_of(alice, base_url)
    sync_redis.client_kill_filter(_type="pubsub")
    assert (await alice.get("/api/logout")).code == 200  # its event may be lost
    socket.write_message(json.dumps({"op": "send", "chat_id": chat_id, "content": "after logout"}))
    while (event := await next_event_or_close(socket)) is not None:
        assert event["type"] in ("resync",), event  # never an ack
    assert socket.close_code == 4001
    assert sync_redis.zcard(keys.chat_messages_key(chat_id)) == 0


async def next_event_or_close(socket):
    raw = await asyncio.wait_for(socket.read_message(), 15)
    return None if raw is None else json.loads(raw)


@pytest.mark.gen_test
async def test_ready_means_subscribed_even_for_the_first_socket(base_url, make_user, sync_redis):
    for _ in range(10):
        user = await make_user()
        socket = await socket_of(user, base_url)  # the only socket: its subscribe is the first
        sync_redis.publish(keys.user_events_channel(user.user_id), '{"type":"probe"}')
        assert await next_event(socket, timeout=2) == {"type": "probe"}
        socket.close()


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "frame, error",
    [
        ('{"op": "send", "\\ud800": 1}', "a field name is not valid unicode"),
        ('{"op": "send", "request_id": "\\ud800"}', "request_id is not valid unicode"),
        ('{"op": "send", "content": "\\udfff"}', "content is not valid unicode"),
        ("[" * 50_000, "the frame is not valid JSON"),
    ],
)
async def test_frames_json_cannot_carry_get_an_error_event(base_url, make_user, frame, error):
    alice = await make_user()
    socket = await socket_of(alice, base_url)
    assert await request(socket, frame) == {"type": "error", "request_id": None, "status": 400, "error": error}
    assert (await request(socket, "{}"))["type"] == "error"  # still open


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "method, headers, status",
    [
        ("GET", {}, 400),
        ("GET", {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Version": "13", "Origin": "https://evil.example"}, 403),
        ("GET", {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Version": "99"}, 426),
    ],
)  # fmt: skip
async def test_refused_upgrades_answer_json(make_user, method, headers, status):
    alice = await make_user()
    response = await alice.request(method, "/api/ws", headers=headers)
    assert response.code == status, response
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"error"}


@pytest.mark.gen_test
async def test_other_methods_on_the_socket_path_are_405_before_401(new_client):
    response = await new_client().post("/api/ws", {})
    assert response.code == 405 and response.json() == {"error": "method not allowed"}


@pytest.mark.gen_test
async def test_426_names_the_version_we_speak(make_user):
    alice = await make_user()
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
               "Sec-WebSocket-Version": "99"}  # fmt: skip
    response = await alice.get("/api/ws", headers=headers)
    assert response.code == 426 and response.headers["Sec-WebSocket-Version"] == "13"
