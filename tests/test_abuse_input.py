"""The abuse tier, input and operations (docs/limits.md): header bytes that
once made a 500, headers too large to parse cheaply, content and history
pages that grow when encoded, a huge chat deleted without blocking Redis, a
full Redis, /metrics for strangers, the Server header and a flooded log."""

import asyncio
import json
import logging
import re
import time

import pytest

from server.logs import RepeatLimit
from server.settings import Settings
from storage import keys

from .api_helpers import add_member, assert_error, assert_ok, create_chat, members_of, send, summary
from .processes import RunningServer
from .redis_clients import nodes_of
from .wsclient import open_socket

PAGE_MAX_BYTES = 4096  # small, so a few messages of 1 kB fill a page


@pytest.fixture
def settings():
    # Only 127.0.0.1 may read /metrics: connecting from 127.0.0.2 plays a stranger.
    return Settings(
        bcrypt_cost=4, rate_limits=False, history_page_max_bytes=PAGE_MAX_BYTES, metrics_allow="127.0.0.1/32"
    )


async def exchange(port: int, data: bytes, *, source: str | None = None) -> tuple[bytes, dict, bytes]:
    """Sends raw bytes on a new connection; (status line, headers, body) of
    the first answer, read by its Content-Length; (b"", {}, b"") if the
    server closed without answering."""
    local = (source, 0) if source else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    try:
        writer.write(data)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, ConnectionError):
            return b"", {}, b""
        status, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 10)
        return status.encode(), headers, body
    finally:
        writer.close()


def assert_raw_json_error(answer, status: int) -> str:
    line, headers, body = answer
    assert line.split(b" ")[1] == str(status).encode(), answer
    assert headers["content-type"].startswith("application/json"), answer
    error = json.loads(body)
    assert list(error) == ["error"] and error["error"], error
    return error["error"]


def cookie_of(client) -> str:
    return f"user_id={client.cookies['user_id']}; token={client.cookies['token']}"


# Content-Length: the byte that made a 500.


@pytest.mark.gen_test
@pytest.mark.parametrize("request_line", [b"POST /api/chats", b"POST /api/reg", b"GET /api/chats", b"PUT /nowhere"])
async def test_content_length_in_other_digits_is_json_400_not_500(http_port, make_user, request_line):
    # 0xB2 is "²" in Latin-1: str.isdigit() takes it, int() does not.
    alice = await make_user()
    head = request_line + b" HTTP/1.1\r\nHost: x\r\nCookie: " + cookie_of(alice).encode()
    answer = await exchange(http_port, head + b"\r\nContent-Length: \xb2\r\n\r\n")
    assert assert_raw_json_error(answer, 400) == "Content-Length must be a number in ASCII digits"
    assert (await alice.get("/api/chats")).code == 200  # the server carries on


@pytest.mark.gen_test
@pytest.mark.parametrize("value", [b"\xb9\xb2", b"\xd9\xa3", b"+5", b"5 5", b"1" * 19])
async def test_content_length_must_be_plain_ascii_digits(http_server, http_port, value):
    answer = await exchange(http_port, b"POST /api/reg HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n")
    assert_raw_json_error(answer, 400)


# Header sizes.


@pytest.mark.gen_test
@pytest.mark.parametrize("method, path", [("GET", "/api/chats"), ("POST", "/api/login"), ("GET", "/api/ws"), ("GET", "/x")])
async def test_a_cookie_header_over_the_cap_is_json_431(http_port, make_user, method, path):
    alice = await make_user()
    cookie = cookie_of(alice) + "; pad=" + "a" * Settings.max_cookie_bytes
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: 0\r\n\r\n"
    answer = await exchange(http_port, request.encode())
    assert assert_raw_json_error(answer, 431) == "request header fields too large"
    # Just under the cap, the same session works.
    cookie = cookie_of(alice) + "; pad=" + "a" * (Settings.max_cookie_bytes - len(cookie_of(alice)) - 10)
    answer = await exchange(http_port, f"GET /api/chats HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    assert answer[0].startswith(b"HTTP/1.1 200 "), answer


@pytest.mark.gen_test
async def test_a_60_kb_cookie_header_is_cut_off_unparsed_and_others_are_served(http_port, make_user):
    # Past --max-header-bytes Tornado stops reading and closes the connection
    # without an answer: nothing of the head is parsed.
    alice = await make_user()
    cookie = cookie_of(alice) + "; pad=" + "a" * 60_000
    request = f"GET /api/chats HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode()
    answers = await asyncio.gather(*(exchange(http_port, request) for _ in range(20)))
    assert answers == [(b"", {}, b"")] * 20
    assert (await alice.get("/api/chats")).code == 200


# The Server header.


@pytest.mark.gen_test
async def test_no_answer_names_the_server_or_its_version(http_port, make_user, new_client, base_url):
    alice = await make_user()
    anonymous = new_client()
    answers = [
        await alice.get("/api/chats"),  # 200
        await anonymous.get("/api/chats"),  # 401
        await alice.get("/nowhere"),  # 404
        await alice.request("PATCH", "/api/chats"),  # 405
        await alice.post(f"/api/chats/{await create_chat(alice)}", {"content": "\x01" * 4000}),  # 400
        await anonymous.post("/api/reg", body="x" * (Settings.max_body_bytes + 1)),  # 413
        await anonymous.get("/healthz"),
        await anonymous.get("/api/openapi.json"),
    ]
    for response in answers:
        assert "Server" not in response.headers, (response, response.headers)
    for request in (
        b"GET /api/chats HTTP/1.1\r\nHost: x\r\nCookie: pad=" + b"a" * 9000 + b"\r\n\r\n",  # 431
        b"GET /api/ws HTTP/1.1\r\nHost: x\r\n\r\n",  # the socket's 401
        b"GET /api/chats HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",  # 400
    ):
        line, headers, _ = await exchange(http_port, request)
        assert line and "server" not in headers, (line, headers)
    socket = await open_socket(base_url, alice.cookies)  # the 101 upgrade
    try:
        assert "Server" not in socket.headers, socket.headers
    finally:
        socket.close()


# What a message costs to store.


@pytest.mark.gen_test
async def test_content_is_bounded_in_stored_bytes_as_well_as_characters(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    # 4,000 control characters are 4,000 characters but 24,000 bytes of JSON.
    error = assert_error(await alice.post(f"/api/chats/{chat_id}", {"content": "\x01" * 4000}), 400)
    assert "at most 16384 bytes once stored as JSON" in error
    fitting = ["\x01" * (16384 // 6), "🍣" * 4000, '"\\\n' * 1333]  # 16,380, 16,000 and 7,998 bytes
    sent = [await send(alice, chat_id, content) for content in fitting]
    response = await alice.put(f"/api/chats/{chat_id}/messages/{sent[0]}", {"content": "\x02" * 3000})
    assert_error(response, 400)  # an edit too
    for message_id, content in zip(sent, fitting):
        stored = (await alice.get(f"/api/chats/{chat_id}/messages/{message_id}")).json()["message"]
        assert stored["content"] == content


# History pages in bytes.


async def paged_back(client, chat_id: int, **params) -> tuple[list[int], int]:
    """Every message id, paging back from the newest until a page is empty; (ids oldest first, pages read).
    Each page is within the byte bound (unless it holds one message), and names its cursor when cut."""
    ids: list[int] = []
    pages = 0
    while True:
        response = await client.get(f"/api/chats/{chat_id}", params=params)
        assert response.code == 200, response
        messages = response.json()["messages"]
        pages += 1
        if not messages:
            return ids, pages
        assert len(response.text) <= PAGE_MAX_BYTES + 100 or len(messages) == 1, len(response.text)
        assert response.json().get("next_before", messages[0]["id"]) == messages[0]["id"]
        ids[:0] = [m["id"] for m in messages]
        params = {**params, "before": messages[0]["id"]}


@pytest.mark.gen_test
async def test_a_history_page_stops_at_its_byte_bound_and_paging_reaches_every_message(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    sent = [await send(alice, chat_id, f"{i:04d} " + "x" * 995) for i in range(30)]
    for reader in (alice, bob, bob):  # the second read of the newest page may come from the read cache
        first = (await reader.get(f"/api/chats/{chat_id}")).json()
        assert 1 < len(first["messages"]) < 5 and first["next_before"] == first["messages"][0]["id"]
        assert [m["id"] for m in first["messages"]] == sent[-len(first["messages"]) :]
        ids, pages = await paged_back(reader, chat_id)
        assert ids == sent and pages > 7
    # A page that fits whole says nothing more.
    small = (await bob.get(f"/api/chats/{chat_id}", params={"limit": 2})).json()
    assert list(small) == ["messages"] and [m["id"] for m in small["messages"]] == sent[-2:]
    # Paging forward names its cursor too.
    forward, after, cut = [sent[0]], sent[0], 0
    while messages := (body := (await bob.get(f"/api/chats/{chat_id}", params={"after": after})).json())["messages"]:
        forward += [m["id"] for m in messages]
        after = messages[-1]["id"]
        if "next_after" in body:
            assert body["next_after"] == after
            cut += 1
    assert forward == sent and cut > 5


@pytest.mark.gen_test
async def test_one_message_larger_than_the_bound_still_makes_a_page(make_user):
    alice = await make_user()
    chat_id = await create_chat(alice)
    big = [await send(alice, chat_id, "y" * 3999) for _ in range(3)]  # each about as large as the bound
    ids, pages = await paged_back(alice, chat_id, limit=1000)
    assert ids == big and pages == 4


# Deleting a huge chat.


@pytest.mark.gen_test
async def test_the_last_member_out_frees_a_huge_history_in_the_background(make_user, sync_redis):
    alice = await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "the last one")
    messages = keys.chat_messages_key(chat_id)
    pipe = sync_redis.pipeline(transaction=False)
    for start in range(2, 200_002, 10_000):
        batch = {
            f'{{"id":{i},"sender_id":{alice.user_id},"time":"2026-01-01T00:00:00.000Z","content":"m{i}"}}': i
            for i in range(start, start + 10_000)
        }
        pipe.zadd(messages, batch)
    pipe.execute()
    assert sync_redis.zcard(messages) == 200_001
    # Lazy freeing by configuration would hide a plain DEL: only UNLINK may do it here.
    nodes = nodes_of(sync_redis)
    before = [node.config_get("lazyfree-lazy-user-del")["lazyfree-lazy-user-del"] for node in nodes]
    for node in nodes:
        node.config_set("lazyfree-lazy-user-del", "no")
    try:
        freed = sum(node.info("memory")["lazyfreed_objects"] for node in nodes)
        assert_ok(await alice.delete("/api/chats", params={"chat_id": chat_id}))
        assert sync_redis.exists(*keys.chat_keys(chat_id)) == 0
        deadline = time.monotonic() + 10  # counted once the background thread is done
        while sum(node.info("memory")["lazyfreed_objects"] for node in nodes) == freed:
            assert time.monotonic() < deadline, "the history was not freed in the background"
            await asyncio.sleep(0.05)
    finally:
        for node, value in zip(nodes, before):
            node.config_set("lazyfree-lazy-user-del", value)


# A full Redis.


@pytest.mark.gen_test
async def test_every_write_to_a_full_redis_is_json_503(make_user, new_client, sync_redis):
    alice, bob, carol, dave = await make_user(), await make_user(), await make_user(), await make_user()
    chat_id = await create_chat(alice)
    await add_member(alice, chat_id, bob)
    await add_member(alice, chat_id, carol)
    message_id = await send(alice, chat_id)
    unwanted = await send(alice, chat_id, "unwanted")
    nodes = nodes_of(sync_redis)
    before = [node.config_get("maxmemory")["maxmemory"] for node in nodes]
    for node in nodes:
        node.config_set("maxmemory", 1)
    try:
        chat = f"/api/chats/{chat_id}"
        writes = {
            "register": await new_client().register(),
            "login": await new_client().post("/api/login", {"name": carol.name, "password": "correct horse"}),
            "create chat": await alice.post("/api/chats", {"title": "full"}),
            "send": await alice.post(chat, {"content": "hello"}),
            "edit": await alice.put(f"{chat}/messages/{message_id}", {"content": "changed"}),
            "rename": await alice.put(chat, {"title": "renamed"}),
            "add member": await alice.post(f"{chat}/members", {"user_id": dave.user_id}),
            "mark read": await bob.post(f"{chat}/read", {"message_id": message_id}),
            "update user": await alice.put(f"/api/user/{alice.user_id}", {"email": "new@example.org"}),
        }
        # What only frees still works.
        assert_ok(await alice.delete(f"{chat}/messages/{unwanted}"))
        assert_ok(await carol.delete("/api/chats", params={"chat_id": chat_id}))
        assert_ok(await dave.get("/api/logout"))
    finally:
        for node, value in zip(nodes, before):
            node.config_set("maxmemory", value)
    for what, response in writes.items():
        assert assert_error(response, 503) == "storage is full, try again later", what
    # Nothing half-done: the chat is as it was.
    page = (await alice.get(chat)).json()["messages"]
    assert [(m["id"], m["content"], "edited_at" in m) for m in page] == [(message_id, "hello", False)]
    assert (await summary(bob, chat_id))["unread_count"] == 1
    assert (await members_of(alice, chat_id))[1] == [alice.user_id, bob.user_id]
    assert (await carol.post("/api/login", {"name": carol.name, "password": "correct horse"})).code == 200


# /metrics.


@pytest.mark.gen_test
async def test_metrics_answer_only_allowed_networks(http_server, http_port):
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    line, headers, body = await exchange(http_port, request, source="127.0.0.1")
    assert line.startswith(b"HTTP/1.1 200 ") and b"chat_http_requests" in body
    refused = await exchange(http_port, request, source="127.0.0.2")
    assert assert_raw_json_error(refused, 403) == "metrics are only served to the networks in --metrics-allow"
    # A client cannot claim to be an allowed one: no proxy is trusted here.
    spoofed = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n"
    assert_raw_json_error(await exchange(http_port, spoofed, source="127.0.0.2"), 403)
    metrics = (await exchange(http_port, request, source="127.0.0.1"))[2]
    assert re.search(rb'chat_http_requests_total\{[^}]*status="403"\} 2\.0', metrics), metrics  # counted


# The log.


def count_log_lines(server: RunningServer) -> tuple[int, int]:
    """(malformed-request lines written, lines they say were left out) in the server's log so far."""
    server.log.seek(0)
    written = suppressed = 0
    for line in server.log.read().decode(errors="replace").splitlines():
        found = re.search(r"(\d+) similar lines suppressed \(over \d+ a second\), the first: Malformed HTTP message", line)
        if found:
            suppressed += int(found.group(1))
        elif "Malformed HTTP message" in line:
            written += 1
    return written, suppressed


@pytest.mark.timeout(90)
def test_a_flood_of_bad_requests_writes_a_bounded_log(redis_url, sync_redis, tmp_path):
    server = RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path), "--log-lines-per-sec", "5")
    try:
        flood = 300

        async def send_all() -> float:
            started = time.monotonic()
            for _ in range(flood // 50):
                await asyncio.gather(*(exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n") for _ in range(50)))
            return time.monotonic() - started

        elapsed = asyncio.run(send_all())
        deadline = time.monotonic() + 15
        while sum(count_log_lines(server)) < flood and time.monotonic() < deadline:
            time.sleep(0.2)
        written, suppressed = count_log_lines(server)
    finally:
        assert server.stop() == 0
    assert written + suppressed == flood, (written, suppressed)
    # At most 5 a second, in each second the flood touched.
    assert written <= 5 * (int(elapsed) + 2), (written, elapsed)
    assert suppressed > 0


def test_the_repeat_limit_counts_what_it_leaves_out():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RepeatLimit(3, window_secs=0.3))
    logger = logging.getLogger("test.repeat_limit")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(20):
            logger.warning("the same problem %d", i)
        logger.error("another problem")
        assert [r.getMessage() for r in records] == [f"the same problem {i}" for i in range(3)] + ["another problem"]
        deadline = time.monotonic() + 5
        while len(records) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert records[4].getMessage() == "17 similar lines suppressed (over 3 a second), the first: the same problem 0"
        assert records[4].levelno == logging.WARNING
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    "values, error",
    [
        ({"metrics_allow": "127.0.0.1,the office"}, "metrics_allow: 'the office' is not an address or network"),
        ({"max_cookie_bytes": 20_000}, "max_cookie_bytes must be at least 1024 and at most max_header_bytes"),
        ({"content_max_bytes": 0}, "content_max_bytes must be at least 1"),
        ({"history_page_max_bytes": 0}, "history_page_max_bytes must be at least 1"),
        ({"log_lines_per_sec": 0}, "log_lines_per_sec must be at least 1"),
    ],
)
def test_settings_refuse_limits_that_cannot_work(values, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        Settings(**values)
