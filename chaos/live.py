"""One simulated user's WebSocket, as a real client keeps it: reconnects with
backoff, resumes every chat from its last seq after `ready`, and re-reads a
chat on a 410 or a `resync`."""

import asyncio
import itertools
import json

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, websocket_connect

from .api import Api
from .ledger import Ledger
from .streams import ChatStream

CONNECT_TIMEOUT_SECS = 5.0
READY_TIMEOUT_SECS = 10.0
BACKOFF_FIRST_SECS, BACKOFF_MAX_SECS = 0.2, 3.0
CHAT_EVENTS = {"message", "message_edited", "message_deleted", "chat_renamed", "member_added", "member_removed"}


class Live:
    def __init__(self, api: Api, ledger: Ledger, name: str):
        self.api = api
        self.ledger = ledger
        self.name = name
        self.streams: dict[int, ChatStream] = {}
        self.connection = None
        self.ready = asyncio.Event()
        self.resumed: set[int] = set()  # chats whose resume this connection has acked
        self.pending: dict[str, asyncio.Future] = {}
        self.request_ids = itertools.count(1)
        self.stopping = False
        self.generation = 0  # connections that reached `ready`
        self.resyncs: set[asyncio.Task] = set()

    def follow(self, chat_id: int, seq: int, epoch: str) -> None:
        self.streams[chat_id] = ChatStream(self.ledger, self.name, chat_id, seq, epoch)

    @property
    def caught_up(self) -> bool:
        """Open, every chat resumed, none being re-read."""
        return self.ready.is_set() and self.resumed >= set(self.streams) and not any(
            stream.resyncing for stream in self.streams.values()
        )

    async def keep_open(self) -> None:
        """Connects, reads, reconnects with backoff, until `stop()`."""
        backoff = BACKOFF_FIRST_SECS
        while not self.stopping:
            try:
                await self._session()
                backoff = BACKOFF_FIRST_SECS
            except (OSError, HTTPClientError, StreamClosedError, WebSocketClosedError, asyncio.TimeoutError):
                pass
            self._lost()
            if not self.stopping:
                self.ledger.reconnects += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECS)

    async def request(self, frame: dict, timeout: float) -> dict | None:
        """Sends an op and waits for its ack or error; None when the socket is
        down or nothing came in time (the outcome is then unknown)."""
        if not self.ready.is_set():
            return None
        request_id = f"q{next(self.request_ids)}"
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            await self.connection.write_message(json.dumps({**frame, "request_id": request_id}))
            return await asyncio.wait_for(future, timeout)
        except (WebSocketClosedError, StreamClosedError, asyncio.TimeoutError):
            return None
        finally:
            self.pending.pop(request_id, None)

    def notify(self, frame: dict) -> None:
        """Sends an op that has no answer (typing); dropped when the socket is down."""
        if self.ready.is_set():
            try:
                self.connection.write_message(json.dumps(frame))
            except WebSocketClosedError:
                pass

    def stop(self) -> None:
        self.stopping = True
        for task in self.resyncs:
            task.cancel()
        if self.connection is not None:
            self.connection.close()

    async def _session(self) -> None:
        url = self.api.base_url.replace("http://", "ws://", 1) + "/api/ws"
        request = HTTPRequest(url, headers={"Cookie": self.api.cookie_header}, request_timeout=CONNECT_TIMEOUT_SECS)
        self.connection = await asyncio.wait_for(websocket_connect(request), CONNECT_TIMEOUT_SECS)
        first = await asyncio.wait_for(self.connection.read_message(), READY_TIMEOUT_SECS)
        if first is None or json.loads(first).get("type") != "ready":
            return
        self.generation += 1
        # Every resume goes out before any other request: the server holds a
        # chat's live events until its resume or the socket's first other
        # request (docs/live-events.md, "Catching up").
        for chat_id, stream in list(self.streams.items()):
            stream.note("ready")
            if not stream.resyncing:
                frame = {"op": "resume", "chat_id": chat_id, "since": stream.seq, "epoch": stream.epoch,
                         "request_id": f"resume:{chat_id}"}  # fmt: skip
                await self.connection.write_message(json.dumps(frame))
        self.ready.set()
        while (raw := await self.connection.read_message()) is not None:
            self._handle(json.loads(raw))

    def _lost(self) -> None:
        if self.ready.is_set():
            for stream in self.streams.values():
                stream.note("lost")
        self.ready.clear()
        self.resumed.clear()
        for future in self.pending.values():
            if not future.done():
                future.set_result(None)

    def _handle(self, event: dict) -> None:
        kind = event.get("type")
        request_id = str(event.get("request_id") or "")
        if kind in CHAT_EVENTS and event.get("chat_id") in self.streams:
            self.streams[event["chat_id"]].on_event(event)
        elif request_id.startswith("resume:"):
            self._resume_answer(int(request_id.split(":")[1]), event)
        elif kind in ("ack", "error") and request_id in self.pending:
            if not self.pending[request_id].done():
                self.pending[request_id].set_result(event)
        elif kind == "resync":
            for chat_id in [event["chat_id"]] if "chat_id" in event else list(self.streams):
                if chat_id in self.streams:
                    self.streams[chat_id].note("resync-event")
            for chat_id in [event["chat_id"]] if "chat_id" in event else list(self.streams):
                self._resync(chat_id)

    def _resume_answer(self, chat_id: int, event: dict) -> None:
        stream = self.streams[chat_id]
        if event["type"] == "ack":
            stream.on_resume_ack(event["seq"], event["epoch"])
            self.resumed.add(chat_id)
        elif event.get("status") == 410:
            stream.note("410")
            self._resync(chat_id)
        else:
            self.ledger.problem("other", f"{self.name} chat {chat_id}: resume answered {event}")

    def _resync(self, chat_id: int) -> None:
        if chat_id not in self.streams or self.streams[chat_id].resyncing:
            return
        self.streams[chat_id].begin_resync()
        task = asyncio.get_running_loop().create_task(self._reread(chat_id))
        self.resyncs.add(task)
        task.add_done_callback(self.resyncs.discard)

    async def _reread(self, chat_id: int) -> None:
        """Re-reads a chat's newest history and its position, until both answer
        while one connection stays open (so no event falls between the
        position and the live stream)."""
        backoff = BACKOFF_FIRST_SECS
        while not self.stopping:
            await self.ready.wait()
            generation = self.generation
            status, _ = await self.api.call("GET", f"/api/chats/{chat_id}", what="/api/chats/{id}")
            if status == 200:
                status, listing = await self.api.call("GET", "/api/chats")
                if status == 200 and self.ready.is_set() and generation == self.generation:
                    for chat in listing["chats"]:
                        if chat["id"] == chat_id:
                            self.streams[chat_id].end_resync(chat["seq"], chat["epoch"])
                            self.resumed.add(chat_id)
                            return
                    self.ledger.problem("other", f"{self.name}: chat {chat_id} is no longer in their list")
                    return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_SECS)
