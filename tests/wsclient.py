"""WebSocket helpers for the live-delivery tests, over Tornado's real client."""

import asyncio
import json

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def open_socket(base_url: str, cookies: dict, *, ready: bool = True):
    """Connects to /api/ws with the given cookies; waits for the "ready" event."""
    url = base_url.replace("http://", "ws://", 1) + "/api/ws"
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    connection = await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie}, request_timeout=10))
    if ready:
        event = await next_event(connection)
        assert event["type"] == "ready", event
    return connection


async def next_event(connection, timeout: float = 5.0) -> dict:
    """The next event, or AssertionError if the socket closes or nothing comes in time."""
    raw = await asyncio.wait_for(connection.read_message(), timeout)
    assert raw is not None, f"socket closed: {connection.close_code} {connection.close_reason}"
    return json.loads(raw)


async def closed(connection, timeout: float = 5.0) -> int:
    """Waits for the server to close the socket; returns the close code."""
    while await asyncio.wait_for(connection.read_message(), timeout) is not None:
        pass
    return connection.close_code


async def request(connection, frame) -> dict:
    """Sends a frame (a dict as JSON, or a raw str/bytes) and returns the next event."""
    connection.write_message(json.dumps(frame) if isinstance(frame, dict) else frame, binary=isinstance(frame, bytes))
    return await next_event(connection)


async def answer(connection, frame: dict) -> dict:
    """Sends a request frame; returns its `ack` or `error` (events of other kinds may come first)."""
    connection.write_message(json.dumps(frame))
    while (event := await next_event(connection))["type"] not in ("ack", "error"):
        pass
    return event


async def go_live(connection) -> None:
    """Ends the socket's resume hold at once (docs/live-events.md, "Catching
    up"): any request but a resume does, here an empty `watch_presence`.
    Without it a chat's live events wait up to a second after `ready`."""
    ack = await answer(connection, {"op": "watch_presence", "user_ids": []})
    assert ack["type"] == "ack", ack
