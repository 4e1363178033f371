"""Limits of a socket's life, with settings tightened to test them quickly:
a client that stops reading is cut off, an expired session is noticed."""

import asyncio
import base64
import json
import os
import socket

import pytest

from server.settings import Settings
from storage import keys

from .wsclient import closed, next_event, open_socket

PENDING_LIMIT = 256 * 1024


@pytest.fixture
def settings():
    return Settings(bcrypt_cost=4, ws_max_pending_bytes=PENDING_LIMIT, ws_session_check_secs=0.2)


async def raw_socket_that_never_reads(port: int, cookies: dict):
    """A WebSocket handshake by hand, on a socket with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    writer.write(
        (
            "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


@pytest.mark.gen_test(timeout=60)
async def test_a_slow_reader_is_dropped_and_others_carry_on(base_url, http_port, make_user, hub, sync_redis):
    slow, fine = await make_user(), await make_user()
    reader, writer = await raw_socket_that_never_reads(http_port, slow.cookies)
    fine_socket = await open_socket(base_url, fine.cookies)
    while hub.socket_count < 2:
        await asyncio.sleep(0.01)

    # Far more than the kernel's buffers and the limit hold together.
    noise = json.dumps({"type": "noise", "pad": "x" * 100_000})
    for _ in range(200):
        sync_redis.publish(keys.user_events_channel(slow.user_id), noise)
    for _ in range(150):
        if hub.socket_count == 1:
            break
        await asyncio.sleep(0.1)
    assert hub.socket_count == 1  # the slow one is gone, memory with it

    chat_id = (await fine.post("/api/chats", {"title": "unharmed"})).json()["id"]
    assert (await next_event(fine_socket))["chat_id"] == chat_id
    received = 0
    while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):
        received += len(chunk)
    assert received < 200 * 100_000  # cut off, not delivered in full
    writer.close()


@pytest.mark.gen_test
async def test_a_session_that_expires_closes_its_socket(base_url, make_user, sync_redis):
    alice = await make_user()
    socket = await open_socket(base_url, alice.cookies)
    # Expiry publishes nothing: the key just goes. The periodic check notices.
    for key in sync_redis.scan_iter(f"user:{{{alice.user_id}}}:session:*"):
        sync_redis.delete(key)
    assert await closed(socket) == 4001
