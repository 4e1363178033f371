"""Helpers for the per-chat log tests: a socket that records everything it
receives, the catch-up endpoint, and checks on sequences of chat events."""

import asyncio
import itertools
import json
import time

from .redis_clients import settle_pubsub
from .wsclient import open_socket

# Events that belong to a chat's log and carry `seq`.
CHAT_EVENT_TYPES = frozenset(
    {"message", "message_edited", "message_deleted", "chat_renamed", "member_added", "member_removed"}
)
WAIT_SECS = 10.0
GRACE_SECS = 0.5  # after the log shows an event, long enough for any socket to get it too
_request_ids = itertools.count(1)


class Listener:
    """An open socket whose every event is read in the background and kept, in arrival order."""

    def __init__(self, connection):
        self.connection = connection
        self.events: list[dict] = []
        self.closed = False
        self._arrived = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, base_url: str, client, sync_redis=None) -> "Listener":
        """A socket of `client` after its `ready` (on a cluster, once the setup's events have settled)."""
        if sync_redis is not None:
            settle_pubsub(sync_redis)
        # Frames before `ready` are kept like any other: whether `ready` comes
        # first is test_chat_log.py's test_ready_comes_first_..., not every test's.
        listener = cls(await open_socket(base_url, client.cookies, ready=False))
        await listener.wait_until(lambda: any(e["type"] == "ready" for e in listener.events), what="ready")
        return listener

    async def _read(self) -> None:
        while True:
            raw = await self.connection.read_message()
            if raw is None:
                self.closed = True
                self._arrived.set()
                return
            self.events.append(json.loads(raw))
            self._arrived.set()

    def close(self) -> None:
        self._reader.cancel()
        self.connection.close()

    def write(self, frame: dict) -> None:
        self.connection.write_message(json.dumps(frame))

    def of_chat(self, chat_id: int) -> list[dict]:
        """The chat's log events this socket got, in arrival order."""
        return [e for e in self.events if e.get("chat_id") == chat_id and e["type"] in CHAT_EVENT_TYPES]

    def seqs(self, chat_id: int) -> list[int]:
        return [e["seq"] for e in self.of_chat(chat_id)]

    async def wait_until(self, condition, timeout: float = WAIT_SECS, what: str = "") -> None:
        """Returns once condition() holds; AssertionError (with what arrived) if it does not in time."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                kinds = [(e["type"], e.get("chat_id"), e.get("seq")) for e in self.events[-30:]]
                raise AssertionError(f"not seen within {timeout} s: {what}; closed={self.closed}; last: {kinds}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_for_seq(self, chat_id: int, seq: int, timeout: float = WAIT_SECS) -> None:
        """Returns once an event of the chat with this seq (or a later one) has arrived."""
        await self.wait_until(
            lambda: any(s >= seq for s in self.seqs(chat_id)), timeout, f"chat {chat_id} seq {seq}"
        )

    async def reply(self, request_id, timeout: float = WAIT_SECS) -> dict:
        """The ack or error answering request_id."""
        found: list[dict] = []

        def answered() -> bool:
            found[:] = [
                e for e in self.events if e["type"] in ("ack", "error") and e.get("request_id") == request_id
            ]
            return bool(found)

        await self.wait_until(answered, timeout, f"an answer to {request_id!r}")
        assert len(found) == 1, found
        return found[0]

    async def resume(self, chat_id, since, epoch=None, timeout: float = WAIT_SECS) -> tuple[dict, int]:
        """Sends a resume; returns its answer and how many events had arrived before it was sent."""
        request_id = f"resume-{next(_request_ids)}"
        frame = {"op": "resume", "chat_id": chat_id, "since": since, "request_id": request_id}
        if epoch is not None:
            frame["epoch"] = epoch
        sent_at = len(self.events)
        self.write(frame)
        return await self.reply(request_id, timeout), sent_at


async def events_since(client, chat_id, since=0, **params):
    """The raw answer of GET /api/chats/{chat_id}/events?since=...&..."""
    return await events_query(client, chat_id, {"since": since, **params})


async def events_query(client, chat_id, query: dict):
    """The raw answer of GET /api/chats/{chat_id}/events with exactly this query."""
    return await client.get(f"/api/chats/{chat_id}/events", params=query or None)


async def log_page(client, chat_id: int, since: int = 0, **params) -> dict:
    response = await events_since(client, chat_id, since, **params)
    assert response.code == 200, response
    return response.json()


async def whole_log(client, chat_id: int, since: int = 0) -> dict:
    """Every kept event after `since`, paging with the largest limit: {"seq", "epoch", "events"}."""
    page = await log_page(client, chat_id, since, limit=1000)
    events = list(page["events"])
    while page["events"] and events[-1]["seq"] < page["seq"]:
        page = await log_page(client, chat_id, events[-1]["seq"], limit=1000)
        events += page["events"]
    return {"seq": page["seq"], "epoch": page["epoch"], "events": events}


async def newest_seq(client, chat_id: int) -> tuple[int, str]:
    """(seq, epoch) of the chat as its log says now."""
    page = await log_page(client, chat_id, 0, limit=1)
    return page["seq"], page["epoch"]


async def wait_for_log(client, chat_id: int, seq: int, timeout: float = WAIT_SECS) -> None:
    """Returns once the chat's log has reached `seq`."""
    deadline = time.monotonic() + timeout
    while (await newest_seq(client, chat_id))[0] < seq:
        assert time.monotonic() < deadline, f"chat {chat_id} never reached seq {seq}"
        await asyncio.sleep(0.02)


def assert_contiguous(seqs: list[int], first: int, last: int) -> None:
    """Exactly first..last, each once, in order."""
    if seqs != list(range(first, last + 1)):
        missing = sorted(set(range(first, last + 1)) - set(seqs))
        repeated = sorted({s for s in seqs if seqs.count(s) > 1})
        out_of_order = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a][:10]
        raise AssertionError(
            f"expected seq {first}..{last} once each in order; got {len(seqs)} events: "
            f"missing {missing[:20]}, repeated {repeated[:20]}, out of order {out_of_order}"
        )


class Sender:
    """Sends numbered messages to a chat one after another, in the background."""

    def __init__(self, client, chat_id: int, prefix: str = "m"):
        self.client, self.chat_id, self.prefix = client, chat_id, prefix
        self.sent: list[tuple[int, str]] = []  # (message id, content) in send order
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self, count: int, pause_secs: float = 0.0) -> "Sender":
        self._task = asyncio.get_running_loop().create_task(self._run(count, pause_secs))
        return self

    async def _run(self, count: int, pause_secs: float) -> None:
        for n in range(count):
            if self._stop.is_set():
                return
            content = f"{self.prefix}{n}"
            response = await self.client.post(f"/api/chats/{self.chat_id}", {"content": content})
            assert response.code == 201, response
            self.sent.append((response.json()["id"], content))
            if pause_secs:
                await asyncio.sleep(pause_secs)

    def stop(self) -> None:
        self._stop.set()

    async def done(self, timeout: float = 60.0) -> list[tuple[int, str]]:
        await asyncio.wait_for(self._task, timeout)
        return self.sent

    async def until(self, count: int, timeout: float = WAIT_SECS) -> None:
        """Returns once at least `count` messages have been stored."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            assert not self._task.done() or self._task.exception() is None, self._task.exception()
            assert time.monotonic() < deadline, f"only {len(self.sent)} of {count} sends stored"
            await asyncio.sleep(0.005)


def wrong_epoch(epoch: str) -> str:
    """An epoch of the same shape that is not this one."""
    assert isinstance(epoch, str) and epoch, epoch
    return epoch[:-1] + ("1" if epoch[-1] != "1" else "2")


async def leave(client, chat_id: int) -> None:
    response = await client.delete("/api/chats", {"chat_id": chat_id})
    assert response.code == 200, response


async def remove(owner, chat_id: int, member) -> None:
    response = await owner.delete(f"/api/chats/{chat_id}/members", {"user_id": member.user_id})
    assert response.code == 200, response


def assert_resumed(events: list[dict], since: int, newest: int) -> None:
    """What a socket that resumed from `since` got of one chat: every seq
    since+1..newest exactly once, in seq order from since+1 on (before it, only
    events that came live before the resume was served); whatever came live
    at or below `since` came once."""
    seqs = [e["seq"] for e in events]
    after = [s for s in seqs if s > since]
    assert sorted(after) == list(range(since + 1, newest + 1)), (
        f"not every seq {since + 1}..{newest} exactly once: got {seqs}"
    )
    rest = after[after.index(since + 1) :] if after else []
    assert rest == sorted(rest), f"out of seq order after the replay began: {rest}"
    before = [s for s in seqs if s <= since]
    assert len(set(before)) == len(before), f"an event at or below {since} came twice: {seqs}"
