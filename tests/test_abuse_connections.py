"""The abuse tier, connections and slow clients: each attack of issue 15,
scaled down by low caps and timeouts, with another client still served.

Caps on connections per process (503 past them, and nothing logged per
refusal), on WebSockets per user and per address across processes (429, and
freed when a process dies), timeouts for slow heads and bodies, and the
socket that stops reading (4008)."""

import asyncio
import base64
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from server.connection_limits import connection_cap, raise_file_limit
from server.settings import Settings

from .processes import REPO, RunningServer, user_on
from .wsclient import go_live, next_event

HEADER_SECS, IDLE_SECS = 1.5, 3.0
BODY_GRACE_SECS, BODY_SECS, BODY_RATE = 1.0, 4.0, 200
PENDING_LIMIT, SEND_BUFFER = 64 * 1024, 8 * 1024


@pytest.fixture
def settings():
    return Settings(
        bcrypt_cost=4, rate_limits=False, ws_per_user=3, ws_per_address=4, trusted_proxies="127.0.0.1",
        header_timeout_secs=HEADER_SECS, idle_timeout_secs=IDLE_SECS, body_grace_secs=BODY_GRACE_SECS,
        body_timeout_secs=BODY_SECS, body_min_bytes_per_sec=BODY_RATE,
        ws_max_pending_bytes=PENDING_LIMIT, ws_send_buffer_bytes=SEND_BUFFER,
    )  # fmt: skip


async def try_socket(base: str, cookies: dict, headers: dict | None = None):
    """A WebSocket to /api/ws, open and `ready`; or the HTTP answer that refused it."""
    url = base.replace("http://", "ws://", 1) + "/api/ws"
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    request = HTTPRequest(url, headers={"Cookie": cookie, **(headers or {})}, request_timeout=10)
    try:
        connection = await websocket_connect(request)
    except HTTPClientError as exc:
        return exc.response
    assert (await next_event(connection))["type"] == "ready"
    return connection


def is_open(answer) -> bool:
    return isinstance(answer, WebSocketClientConnection)


async def opens_within(seconds: float, base: str, cookies: dict):
    """An open socket, retried while the upgrade is refused (429) for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while not is_open(answer := await try_socket(base, cookies)):
        assert_refused(answer, 429, "10")
        assert time.monotonic() < deadline, "still refused"
        await asyncio.sleep(0.1)
    return answer


def assert_refused(answer, status: int, retry_after: str) -> None:
    assert getattr(answer, "code", None) == status, answer
    assert answer.headers["Retry-After"] == retry_after
    assert answer.headers["Content-Type"].startswith("application/json")
    assert json.loads(answer.body)["error"]


async def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Opens a connection, sends `data`, and reads until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def closed_within(reader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (what it sends is dropped)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def log_lines(server: RunningServer) -> int:
    server.log.seek(0)
    return len(server.log.read().splitlines())


def metric(text: str, name: str, **labels) -> float:
    """One sample's value from the Prometheus text format."""
    label_text = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = "^" + re.escape(name + (f"{{{label_text}}}" if labels else "")) + r" (\S+)$"
    return float(re.search(pattern, text, re.MULTILINE).group(1))


GET_CHATS = b"GET /api/chats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def served_again(client, seconds: float = 15.0) -> None:
    """Waits until the client's GET /api/chats answers 200 (the server freed what it held)."""
    deadline = time.monotonic() + seconds
    while (response := await client.get("/api/chats")).code != 200:
        assert response.code == 503 and time.monotonic() < deadline, response
        await asyncio.sleep(0.2)


# Open connections per process.


@pytest.mark.gen_test(timeout=90)
async def test_past_the_connection_cap_new_connections_get_503_and_nothing_is_logged(
    http_client, redis_url, sync_redis, tmp_path
):
    server = RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off",
                           "--max-connections", "30")  # fmt: skip
    try:
        alice, bob = await user_on(http_client, server), await user_on(http_client, server)
        # WebSockets count as connections: 10 of them, and 20 that say nothing.
        sockets = [await try_socket(server.base, alice.cookies) for _ in range(10)]
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]
        await asyncio.sleep(0.2)  # (accepted: the server reads them in its own time)
        lines = log_lines(server)

        answers = await asyncio.gather(*(exchange(server.port, GET_CHATS) for _ in range(60)))
        for answer in answers:
            head, body = answer.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 503 "), answer
            assert b"\r\nRetry-After: 5\r\n" in head and head.endswith(b"\r\nConnection: close")
            assert json.loads(body)["error"]
        refused = await bob.get("/api/chats")  # promptly, not a hang
        assert refused.code == 503 and refused.headers["Retry-After"] == "5"
        assert log_lines(server) - lines <= 1  # at most the one warning, not a line per attempt

        for connection in sockets:
            connection.close()
        for _, writer in idle:
            writer.close()
        await served_again(bob)
        text = (await bob.get("/metrics")).text
        assert metric(text, "chat_connections_refused_total", cap="connections") >= 61
        assert metric(text, "chat_connections_limit") == 30
    finally:
        assert server.stop() == 0


def _low_file_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))


@pytest.mark.gen_test(timeout=90)
async def test_the_cap_stays_below_the_file_limit(http_client, redis_url, sync_redis, tmp_path):
    # 400 files, of which 256 + 8 stay spare: the cap is half of them, 200.
    server = RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off",
                           "--redis-max-connections", "8", preexec_fn=_low_file_limit)  # fmt: skip
    try:
        alice = await user_on(http_client, server)
        lines = log_lines(server)
        held = []
        for _ in range(260):
            held.append(await asyncio.open_connection("127.0.0.1", server.port))
        answers = await asyncio.gather(*(exchange(server.port, GET_CHATS) for _ in range(40)))
        assert all(answer.startswith(b"HTTP/1.1 503 ") for answer in answers)
        assert log_lines(server) - lines <= 2  # no traceback per attempt
        for _, writer in held:
            writer.close()
        await served_again(alice)
        assert metric((await alice.get("/metrics")).text, "chat_connections_limit") == 200
    finally:
        assert server.stop() == 0
        server.log.seek(0)
        assert b"Traceback" not in server.log.read()


# A server whose cap the file limit cannot hold: accept() fails with EMFILE.
OUT_OF_FILES_SERVER = """
import asyncio, os, resource, sys
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler
from server.connection_limits import ConnectionStats, GuardedHTTPServer
from server.logs import configure_logging
from server.settings import Settings

class Hello(RequestHandler):
    def get(self):
        self.write({"status": "ok"})

async def main():
    configure_logging("info")
    server = GuardedHTTPServer(Application([("/", Hello)]), settings=Settings(), stats=ConnectionStats(), cap=10_000)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 20, hard))
    print(sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.gen_test(timeout=60)
async def test_out_of_files_the_server_pauses_accepting_without_a_log_line_each_time(http_client, tmp_path):
    log = open(tmp_path / "log", "w+b")
    process = subprocess.Popen([sys.executable, "-c", OUT_OF_FILES_SERVER], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=log)  # fmt: skip
    try:
        port = int(await asyncio.get_running_loop().run_in_executor(None, process.stdout.readline))
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(60)]
        await asyncio.sleep(2)  # four pauses' worth of retries, each failing again
        log.seek(0)
        lines = log.read().splitlines()
        assert len(lines) == 1 and b"EMFILE" in lines[0], lines  # one warning, no tracebacks
        for _, writer in held:
            writer.close()
        deadline = time.monotonic() + 10
        while True:
            response = await http_client.fetch(f"http://127.0.0.1:{port}/", raise_error=False, request_timeout=2)
            if response.code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert response.code == 200, response
    finally:
        process.kill()
        process.wait()


def test_the_cap_leaves_room_for_redis_and_files():
    settings = Settings(max_connections=10_000, redis_max_connections=64)
    assert connection_cap(settings, 20_000) == 10_000
    assert connection_cap(settings, 4096) == 4096 - 256 - 64
    assert connection_cap(settings, 400) == 200  # never below half the files
    assert raise_file_limit(Settings(max_connections=1)) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# WebSockets per user and per address.


@pytest.mark.gen_test(timeout=60)
async def test_websockets_per_user_are_capped_and_freed_when_they_close(base_url, make_user):
    alice, bob = await make_user(), await make_user()
    sockets = [await try_socket(base_url, alice.cookies) for _ in range(3)]
    assert_refused(await try_socket(base_url, alice.cookies), 429, "10")
    assert (await bob.get("/api/chats")).code == 200
    assert is_open(await try_socket(base_url, bob.cookies))  # another user is not counted with alice

    sockets.pop().close()
    await opens_within(10, base_url, alice.cookies)  # its claim is released when it closes
    assert_refused(await try_socket(base_url, alice.cookies), 429, "10")
    text = (await bob.get("/metrics")).text
    assert metric(text, "chat_connections_refused_total", cap="ws_per_user") >= 1


@pytest.mark.gen_test(timeout=60)
async def test_websockets_per_address_are_capped(base_url, make_user):
    users = [await make_user() for _ in range(3)]
    # Through a trusted proxy (127.0.0.1): the address is X-Forwarded-For's.
    here, there = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.7"}
    opened = [await try_socket(base_url, users[i % 3].cookies, here) for i in range(4)]
    assert all(is_open(socket) for socket in opened)
    assert_refused(await try_socket(base_url, users[2].cookies, here), 429, "10")
    assert is_open(await try_socket(base_url, users[2].cookies, there))
    assert (await users[0].get("/api/chats")).code == 200
    text = (await users[0].get("/metrics")).text
    assert metric(text, "chat_connections_refused_total", cap="ws_per_address") == 1


@pytest.mark.gen_test(timeout=120)
async def test_the_cap_per_user_holds_across_processes_and_a_killed_one_frees_its_sockets(
    http_client, redis_url, sync_redis, tmp_path
):
    flags = ("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off",
             "--ws-per-user", "3", "--presence-ttl-secs", "3")  # fmt: skip
    first, second = RunningServer(*flags), RunningServer(*flags)
    try:
        alice, bob = await user_on(http_client, first), await user_on(http_client, second)
        held = [await try_socket(first.base, alice.cookies) for _ in range(2)]
        held.append(await try_socket(second.base, alice.cookies))
        assert all(is_open(socket) for socket in held)
        assert_refused(await try_socket(second.base, alice.cookies), 429, "10")
        assert_refused(await try_socket(first.base, alice.cookies), 429, "10")

        first.process.kill()  # no goodbye: its two claims must lapse by themselves
        first.process.wait(10)
        assert (await bob.get("/api/chats")).code == 200
        # The claims live 3 s unrenewed. The two of the killed process come
        # back, and no more: the socket on the live one still counts.
        held += [await opens_within(15, second.base, alice.cookies) for _ in range(2)]
        assert_refused(await try_socket(second.base, alice.cookies), 429, "10")
    finally:
        first.stop()
        assert second.stop() == 0


# Slow requests.


@pytest.mark.gen_test(timeout=60)
async def test_a_dripped_request_head_is_cut(http_port, make_user, app):
    alice = await make_user()
    cut = app.settings["connection_stats"].cut
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(b"GET /api/chats HTTP/1.1\r\n")
    started = time.monotonic()
    while not reader.at_eof() and time.monotonic() - started < 10:
        writer.write(b"X")  # a header line that never ends, a byte at a time
        if await closed_within(reader, 0.3):
            break
    assert await closed_within(reader, 5)
    assert cut["header_timeout"] == 1
    assert (await alice.get("/api/chats")).code == 200
    writer.close()

    # A connection that says nothing at all is cut by the same timer.
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    assert await closed_within(reader, 10)
    assert cut["header_timeout"] == 2
    writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_an_idle_keep_alive_connection_waits_longer_than_a_head(http_server, http_port, app):
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(GET_CHATS)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 401 ")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    await reader.readexactly(length)
    # Idle past the head timeout: still open, then cut by the idle one.
    assert not await closed_within(reader, HEADER_SECS + 0.5)
    assert await closed_within(reader, 10)
    assert app.settings["connection_stats"].cut["idle_timeout"] == 1
    writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_body_that_never_comes_or_drips_is_cut(http_port, make_user, app):
    alice = await make_user()
    cut = app.settings["connection_stats"].cut
    cookie = "; ".join(f"{k}={v}" for k, v in alice.cookies.items())
    head = (f"POST /api/chats HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 2000\r\n\r\n").encode()  # fmt: skip

    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(head)  # and no body
    assert await closed_within(reader, 10)
    assert cut["body_too_slow"] == 1
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(head + b"title=")
    started = time.monotonic()
    while time.monotonic() - started < 15:
        writer.write(b"x")  # far below the minimum rate
        if await closed_within(reader, 0.2):
            break
    assert cut["body_too_slow"] == 2
    writer.close()

    # A whole body in good time is served, and so is everyone else.
    created = await alice.post("/api/chats", {"title": "still served"})
    assert created.code == 201


# A WebSocket that does not read.


async def raw_socket_that_never_reads(port: int, cookies: dict) -> socket.socket:
    """A WebSocket handshake by hand on a plain socket with a small receive
    buffer; it reads the `ready` event, sends one request (which ends the
    resume hold, as a client's first request does: docs/live-events.md),
    then reads nothing more."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    await loop.sock_sendall(sock, (f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                                   f"Cookie: {cookie}\r\n\r\n").encode())  # fmt: skip
    received = b""
    while b'"ready"' not in received:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 101 ")
    payload, mask = b'{"op":"watch_presence","user_ids":[]}', os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    await loop.sock_sendall(sock, bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # a masked text frame
    return sock


@pytest.mark.gen_test(timeout=120)
async def test_a_socket_that_stops_reading_is_closed_with_4008_soon(make_user, http_port, base_url, app):
    slow, bob, carol = await make_user(), await make_user(), await make_user()
    chat_id = (await bob.post("/api/chats", {"title": "a firehose"})).json()["id"]
    for member in (slow, carol):
        await bob.post(f"/api/chats/{chat_id}/members", {"user_id": member.user_id})
    carols = await try_socket(base_url, carol.cookies)
    await go_live(carols)  # her events come as they happen, not in one burst when the hold ends
    sock = await raw_socket_that_never_reads(http_port, slow.cookies)
    cut = app.settings["connection_stats"].cut

    # Linux would let a socket's send buffer grow to 4 MB: capped at 16 kB
    # (twice the setting), the 64 kB limit on unsent bytes is reached after
    # about 90 kB have been sent.
    content = "x" * 4000
    sent = 0
    while cut["ws_too_slow"] == 0:
        assert sent < 60, "the socket was not closed after 240 kB of events"
        assert (await bob.post(f"/api/chats/{chat_id}", {"content": content})).code == 201
        sent += 1
    assert (await carol.get("/api/chats")).code == 200
    assert (await bob.post(f"/api/chats/{chat_id}", {"content": "and on"})).code == 201
    contents = [(await next_event(carols))["message"]["content"] for _ in range(sent + 1)]
    assert contents == [content] * sent + ["and on"]  # carol got everything, in order
    sock.close()
    text = (await carol.get("/metrics")).text
    assert metric(text, "chat_connections_cut_total", reason="ws_too_slow") == 1
