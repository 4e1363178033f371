"""The sockets of the live-delivery line, in a process of their own so that
their CPU is not counted: `python -m bench.live_clients < config.json`.

Opens one socket to `/api/ws` per cookie and waits for `ready` on each; then
reads the CPU time of the process under test, sends a burst of `send` frames
(see `send_burst`), waits until every socket has had every `message` event
of the chat, reads the CPU time again, and prints the outcome as one JSON line.

config: {"url": "ws://...", "pid": ..., "chat_id": ..., "cookies": [...],
"messages": ..., "timeout_secs": ...}
"""

import asyncio
import json
import os
import sys
import time

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

CONTENT = "a benchmark message of ordinary length"  # what the send-latency line sends too
CONNECTING_AT_ONCE = 50
CONNECT_TIMEOUT_SECS = 10.0
SETTLE_SECS = 1.5  # after the last socket opened, before the CPU is read: its subscription work is done
# and its resume hold (server.hub.RESUME_HOLD_SECS, 1 s: these sockets never resume) is over


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    fields = text[text.rindex(")") + 2 :].split()  # after the name, which may hold spaces; starts at field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tally:
    """Counts each socket's message events of the chat until every socket has all of them."""

    def __init__(self, sockets: int, messages: int, chat_id: int):
        self.chat_id, self.messages = chat_id, messages
        self.received = [0] * sockets
        self.complete = 0
        self.frame_bytes = 0
        self.errors: list[dict] = []
        self.replies: asyncio.Queue[dict] = asyncio.Queue()  # acks and errors of sends
        self.done = asyncio.Event()

    def seen(self, index: int, raw: str) -> None:
        """Counts one event socket `index` got."""
        event = json.loads(raw)
        if event.get("type") == "error":
            self.errors.append(event)
        if event.get("type") in ("ack", "error") and event.get("request_id") is not None:
            self.replies.put_nowait(event)
        if event.get("type") != "message" or event.get("chat_id") != self.chat_id:
            return
        self.frame_bytes += len(raw.encode())
        self.received[index] += 1
        if self.received[index] == self.messages:
            self.complete += 1
            if self.complete == len(self.received):
                self.done.set()


async def open_socket(url: str, cookie: str, gate: asyncio.Semaphore) -> WebSocketClientConnection:
    """A socket to url with the cookie, once it has had `ready`."""
    async with gate, asyncio.timeout(CONNECT_TIMEOUT_SECS * 2):  # the timeout starts once through the gate
        request = HTTPRequest(url, headers={"Cookie": cookie}, connect_timeout=CONNECT_TIMEOUT_SECS,
                              request_timeout=CONNECT_TIMEOUT_SECS)  # fmt: skip
        connection = await websocket_connect(request)
        while (raw := await connection.read_message()) is not None:
            if json.loads(raw).get("type") == "ready":
                return connection
        raise ConnectionError(f"socket closed before ready: {connection.close_code} {connection.close_reason}")


async def read_all(connection: WebSocketClientConnection, index: int, tally: Tally) -> None:
    """Hands every event the socket gets to the tally, until it closes."""
    while (raw := await connection.read_message()) is not None:
        tally.seen(index, raw)


async def send_burst(sockets: list[WebSocketClientConnection], tally: Tally, chat_id: int, messages: int) -> None:
    """The burst's sends, each from the next socket once the one before has
    its reply: one send in flight, as when one socket sent them all (the
    server reads a socket's next frame once it has handled the last), while
    no user passes the burst of their rate limit."""
    for request_id in range(messages):
        frame = {"op": "send", "chat_id": chat_id, "content": CONTENT, "request_id": request_id}
        sockets[request_id % len(sockets)].write_message(json.dumps(frame))
        await tally.replies.get()


async def run(config: dict) -> dict:
    """Opens the sockets, measures one burst; the outcome."""
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    sockets = await asyncio.gather(*(open_socket(config["url"], cookie, gate) for cookie in config["cookies"]))
    messages, chat_id = config["messages"], config["chat_id"]
    tally = Tally(len(sockets), messages, chat_id)
    readers = [asyncio.create_task(read_all(s, index, tally)) for index, s in enumerate(sockets)]
    await asyncio.sleep(SETTLE_SECS)
    cpu_before, started = cpu_seconds(config["pid"]), time.monotonic()
    try:
        async with asyncio.timeout(config["timeout_secs"]):
            await send_burst(sockets, tally, chat_id, messages)
            await tally.done.wait()
    except TimeoutError:
        pass  # reported below as missing deliveries
    cpu_after, wall_secs = cpu_seconds(config["pid"]), time.monotonic() - started
    for reader, connection in zip(readers, sockets):
        reader.cancel()
        connection.close()
    deliveries = sum(min(count, messages) for count in tally.received)
    return {
        "deliveries": deliveries,
        "expected": len(sockets) * messages,
        "cpu_secs": cpu_after - cpu_before,
        "wall_secs": wall_secs,
        "frame_bytes": tally.frame_bytes / max(1, sum(tally.received)),
        "errors": len(tally.errors),
        "first_error": tally.errors[0] if tally.errors else None,
    }


def main() -> None:
    config = json.load(sys.stdin)
    print(json.dumps(asyncio.run(run(config))), flush=True)


if __name__ == "__main__":
    main()
