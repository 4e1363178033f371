"""The simulated users: each sends, edits, deletes, reads and types in its
chats at a person's pace, retrying as a real client does."""

import asyncio
import random
import time

from .api import RETRY_STATUSES, Api
from .ledger import Ledger, Send
from .live import Live

PASSWORD = "chaos-password-1"
GIVE_UP_SECS = 30.0  # a client stops retrying a message after this long
ACK_TIMEOUT_SECS = 5.0
RETRY_PAUSE_SECS = (0.2, 1.0)
ACT_PAUSE_SECS = (0.2, 0.8)


class User:
    def __init__(self, name: str, api: Api, ledger: Ledger, rng: random.Random):
        self.name = name
        self.api = api
        self.ledger = ledger
        self.rng = rng
        self.id = 0
        self.chats: list[int] = []
        self.live = Live(api, ledger, name)
        self.mine: list[Send] = []  # acked messages not yet edited or deleted
        self.sent = 0

    async def register(self) -> None:
        status, answer = await self.api.call("POST", "/api/reg", {"name": self.name, "password": PASSWORD,
                                                                 "email": f"{self.name}@example.com"})  # fmt: skip
        if status != 201:
            raise RuntimeError(f"registering {self.name}: {status} {answer}")
        self.id = answer["id"]

    async def act(self, until: float) -> None:
        """One action after another, at a person's pace, until `until`."""
        actions = [(0.32, self.send_http), (0.64, self.send_socket), (0.72, self.edit), (0.76, self.delete),
                   (0.88, self.read), (0.95, self.mark_read), (1.0, self.type)]  # fmt: skip
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(*ACT_PAUSE_SECS))
            draw = self.rng.random()
            await next(action for bound, action in actions if draw < bound)()

    async def send_http(self, send: Send | None = None) -> None:
        send = send or self._new_send()
        give_up = time.monotonic() + GIVE_UP_SECS
        while time.monotonic() < give_up:
            status, answer = await self.api.call("POST", f"/api/chats/{send.chat_id}", {"content": send.content},
                                                 what="/api/chats/{id}", headers={"Idempotency-Key": send.key})  # fmt: skip
            if status == 201:
                return self._acked(send, answer["id"])
            if status == 401:
                await self.log_in()
            elif status not in RETRY_STATUSES:
                send.outcome = "refused"
                return self.ledger.problem("refused", f"{self.name}: send {send.key} refused with {status} {answer}")
            await asyncio.sleep(self.rng.uniform(*RETRY_PAUSE_SECS))
        send.outcome = "gave_up"

    async def send_socket(self) -> None:
        """Over the socket; a send whose ack does not come is retried over
        HTTP with the same key, as the API allows."""
        send = self._new_send()
        frame = {"op": "send", "chat_id": send.chat_id, "content": send.content, "idempotency_key": send.key}
        answer = await self.live.request(frame, ACK_TIMEOUT_SECS)
        if answer is not None and answer["type"] == "ack":
            return self._acked(send, answer["message_id"])
        if answer is not None and answer.get("status") not in RETRY_STATUSES:
            send.outcome = "refused"
            return self.ledger.problem("refused", f"{self.name}: socket send {send.key} refused: {answer}")
        await self.send_http(send)

    async def edit(self) -> None:
        if not self.mine:
            return
        send = self.mine.pop(self.rng.randrange(len(self.mine)))
        send.edit = send.content + " (edited)"
        path = f"/api/chats/{send.chat_id}/messages/{send.message_id}"
        send.edit_outcome = await self._until_done("PUT", path, {"content": send.edit}, ok={200})

    async def delete(self) -> None:
        if not self.mine:
            return
        send = self.mine.pop(self.rng.randrange(len(self.mine)))
        path = f"/api/chats/{send.chat_id}/messages/{send.message_id}"
        # A retry after an answer that was lost finds the message gone: 404 means done then.
        send.delete_outcome = await self._until_done("DELETE", path, None, ok={200}, done_on_retry={404})

    async def read(self) -> None:
        if self.rng.random() < 0.5:
            await self.api.call("GET", "/api/chats")
        else:
            await self.api.call("GET", f"/api/chats/{self.rng.choice(self.chats)}?limit=50", what="/api/chats/{id}")

    async def mark_read(self) -> None:
        if self.mine:
            send = self.rng.choice(self.mine)
            await self.api.call("POST", f"/api/chats/{send.chat_id}/read", {"message_id": send.message_id},
                                what="/api/chats/{id}/read")  # fmt: skip

    async def type(self) -> None:
        self.live.notify({"op": "typing", "chat_id": self.rng.choice(self.chats)})

    async def log_in(self) -> None:
        await self.api.call("POST", "/api/login", {"name": self.name, "password": PASSWORD})

    def _new_send(self) -> Send:
        self.sent += 1
        key = f"{self.name}-{self.sent}-{self.rng.getrandbits(32):08x}"
        send = Send(key, self.rng.choice(self.chats), self.id, f"[{key}] message {self.sent} from {self.name}")
        self.ledger.sends[key] = send
        return send

    def _acked(self, send: Send, message_id: int) -> None:
        send.message_id, send.outcome = message_id, "acked"
        self.mine.append(send)

    async def _until_done(self, method: str, path: str, body: dict | None, *, ok: set[int],
                          done_on_retry: frozenset[int] | set[int] = frozenset()) -> str:  # fmt: skip
        """Retries a change until it is answered `ok`: "acked", "gave_up", or
        "refused" (an answer no retry changes)."""
        give_up = time.monotonic() + GIVE_UP_SECS
        tries = 0
        while time.monotonic() < give_up:
            status, answer = await self.api.call(method, path, body, what="/api/chats/{id}/messages/{id}")
            tries += 1
            if status in ok or (tries > 1 and status in done_on_retry):
                return "acked"
            if status == 401:
                await self.log_in()
            elif status not in RETRY_STATUSES:
                self.ledger.problem("refused", f"{self.name}: {method} {path} answered {status} {answer}")
                return "refused"
            await asyncio.sleep(self.rng.uniform(*RETRY_PAUSE_SECS))
        return "gave_up"
