"""The read cache (issue 13) seen from outside: every write, over HTTP or the
socket, shows in the chat lists and history pages read (and so cached) just
before it: at once on the process that made it, within the pub/sub delay on
another, also when the pub/sub connection was lost meanwhile; a removed
member is refused for good; reads racing writes never miss one that has
returned; lists reorder and history pages around the cached page.

Each test reads everything several times before the write (until a cache
would serve it from memory) and checks that what was read then is
what a small model of the chats predicts, so a stale answer, which is the
pre-write one, always differs from what is expected after the write. The
in-process server gets its events late (`slow_events`), so that what it
shows at once can only come from the write itself."""

import asyncio
import collections
import contextlib
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio.client
from tornado.httpclient import AsyncHTTPClient

from storage import keys

from .api_helpers import assert_error
from .apiclient import ApiClient
from .logclient import Listener
from .read_cache_scene import (
    DEFAULT_LIMIT,
    POLL_EVERY_SECS,
    POLL_SECS,
    Person,
    SCENE_MESSAGES,
    Scene,
    assert_fresh_at_once,
    assert_fresh_eventually,
    assert_views,
    error_status,
    read_list,
    read_page,
    warm,
)
from .redis_clients import kill_pubsub_connections

EVENT_DELAY_SECS = 3.0  # see slow_events: longer than any check made right after a write


@pytest.fixture(autouse=True)
def slow_events(monkeypatch):
    """Holds back each event the in-process server's pub/sub connections
    receive (not the answers to its subscriptions, nor its pings): what it
    answers right after its own write must then come from the write itself,
    not from the write's event overtaking the next read (which it otherwise
    always does, the test's client being slower than Redis). Autouse, so
    that it is in place before the server starts listening; the `run.py`
    processes are not touched."""
    get_message = redis.asyncio.client.PubSub.get_message

    async def late(self, ignore_subscribe_messages=False, timeout=0.0):
        held = self.__dict__.setdefault("held_events", collections.deque())  # (due, message), in arrival order
        deadline = time.monotonic() + (math.inf if timeout is None else timeout)
        while not (held and held[0][0] <= time.monotonic()):
            until = min(deadline, held[0][0]) if held else deadline
            if until == math.inf:
                message = await get_message(self, ignore_subscribe_messages, None)
            else:
                message = await get_message(self, ignore_subscribe_messages, max(0.0, until - time.monotonic()))
            if message is not None and message["type"] in ("message", "smessage"):
                held.append((time.monotonic() + EVENT_DELAY_SECS, message))
            elif message is not None:
                return message
            elif time.monotonic() >= deadline and not (held and held[0][0] <= time.monotonic()):
                return None
        return held.popleft()[1]

    monkeypatch.setattr(redis.asyncio.client.PubSub, "get_message", late)




# Every write path.


@dataclasses.dataclass(frozen=True)
class WritePath:
    name: str
    write: Callable[[Scene], Awaitable]
    changes: frozenset[str]  # whose reads it changes (checked against the model)


MEMBERS = frozenset({"alice", "bob", "carol"})
WRITE_PATHS = [
    WritePath("send_over_http", lambda s: s.send(s.carol, s.chat, "carol, over HTTP"), MEMBERS),
    WritePath("send_over_socket", lambda s: s.send_over_socket(s.alice, s.chat, "alice, by socket"), MEMBERS),
    # bob's newest message: the one before it becomes the summary.
    WritePath("delete_by_query", lambda s: s.delete(s.bob, s.chat, s.message(s.chat, -1), by_path=False), MEMBERS),
    # alice's, inside every page: carol's unread count drops.
    WritePath("delete_by_path", lambda s: s.delete(s.alice, s.chat, s.message(s.chat, -4), by_path=True), MEMBERS),
    WritePath("edit", lambda s: s.edit(s.bob, s.chat, s.message(s.chat, -1), "m24, edited"), MEMBERS),
    WritePath("rename", lambda s: s.rename(s.carol, s.chat, "renamed by carol"), MEMBERS),
    WritePath("add_member", lambda s: s.add(s.bob, s.chat, s.dave), MEMBERS | {"dave"}),
    WritePath("remove_member", lambda s: s.remove(s.alice, s.chat, s.bob), MEMBERS),
    WritePath("leave", lambda s: s.leave(s.carol, s.chat), MEMBERS),
    WritePath("delete_owner_account", lambda s: s.delete_account(s.alice), MEMBERS),  # bob owns it then
    WritePath("read_marker", lambda s: s.read(s.carol, s.chat, 20), frozenset({"carol"})),
    WritePath("create_chat", lambda s: s.create(s.bob, "bob's new chat"), frozenset({"bob"})),
]


def changed_for(before: dict[str, dict], after: dict[str, dict]) -> set[str]:
    return {name for name, view in after.items() if any(before[name][k] != view[k] for k in before[name])}


async def check_write(scene: Scene, path: WritePath, *, writer: str, others: list[str]) -> None:
    """Warms every cache, writes through `writer`, then reads: at once there, eventually on the others."""
    before = await warm(scene, [writer, *others])
    await path.write(scene)
    # What was read before differs from what must be read now, for exactly these users.
    assert changed_for(before, scene.expected()) == path.changes
    await assert_fresh_at_once(scene, writer, path.name)
    for base in others:
        await assert_fresh_eventually(scene, base, path.name)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", WRITE_PATHS, ids=lambda path: path.name)
async def test_each_write_is_read_at_once_on_its_process(path, http_client, base_url):
    scene = await Scene.build(http_client, base_url)
    await check_write(scene, path, writer=base_url, others=[])


@pytest.mark.gen_test(timeout=110)
async def test_each_write_reaches_the_other_process(two_servers, http_client):
    first, second = two_servers
    failures = {}
    for path in WRITE_PATHS:  # one pair of processes for all: each starts in seconds
        scene = await Scene.build(http_client, first.base)
        try:
            await check_write(scene, path, writer=first.base, others=[second.base])
        except AssertionError as error:
            failures[path.name] = error
    if failures:
        pytest.fail("\n\n".join(str(error) for error in failures.values()), pytrace=False)


# A lost pub/sub connection.


def sessions_subscribers(sync_redis) -> int:
    """Connections subscribed to sessions:ended: every process holds one, on its classic connection."""
    ((_, count),) = sync_redis.pubsub_numsub(keys.SESSIONS_ENDED_CHANNEL)
    return count


@contextlib.contextmanager
def subscribing_refused(sync_redis):
    """Meanwhile no connection may subscribe (Redis answers NOPERM), on
    every node; every other command, PUBLISH included, works as before."""
    nodes = sync_redis.every_node() if hasattr(sync_redis, "every_node") else [sync_redis]
    major = int(sync_redis.info("server")["redis_version"].split(".")[0])
    commands = ("subscribe", "psubscribe") + (("ssubscribe",) if major >= 7 else ())
    for node in nodes:
        node.execute_command("ACL", "SETUSER", "default", *(f"-{c}" for c in commands))
    try:
        yield
    finally:
        for node in nodes:
            node.execute_command("ACL", "SETUSER", "default", *(f"+{c}" for c in commands))


@pytest.mark.gen_test(timeout=110)
async def test_writes_made_while_the_pubsub_connection_is_down_are_read_after_all(
    two_servers, http_client, sync_redis
):
    first, second = two_servers
    s = await Scene.build(http_client, first.base)
    await warm(s, [first.base, second.base])
    subscribed = sessions_subscribers(sync_redis)
    with subscribing_refused(sync_redis):
        assert kill_pubsub_connections(sync_redis) >= 2
        # Made while no process can subscribe again: their events are lost
        # to the other process, a chat's channel and a user's alike, and its
        # cache must not outlive that.
        carols = await s.send(s.carol, s.chat, "during the outage")
        await s.rename(s.bob, s.chat, "renamed during the outage")
        await s.add(s.alice, s.chat, s.dave)
        await s.read(s.bob, s.chat, carols)
        assert sessions_subscribers(sync_redis) == 0  # still down: nobody heard a thing
    await assert_fresh_at_once(s, first.base, "outage")
    await assert_fresh_eventually(s, second.base, "outage")

    deadline = time.monotonic() + 10
    while sessions_subscribers(sync_redis) < subscribed:
        assert time.monotonic() < deadline, "the processes did not subscribe again"
        await asyncio.sleep(POLL_EVERY_SECS)
    # Back: the other process follows events again.
    for what, write in [
        ("a send after the outage", lambda: s.send(s.alice, s.chat, "after the outage")),
        ("a removal after the outage", lambda: s.remove(s.alice, s.chat, s.carol)),
    ]:
        await warm(s, [second.base])
        await write()
        await assert_fresh_eventually(s, second.base, what)


# A member removed while reading.


class ReadLoop:
    """One user reading a chat's pages (several limits) and their chat list
    in many concurrent tight loops; each answer kept with when it was asked."""

    def __init__(self, person: Person, base: str, chat_id: int, *, pages: int = 24, lists: int = 4):
        self._http = AsyncHTTPClient(force_instance=True, max_clients=pages + lists)
        self.client = ApiClient(self._http, base)
        self.client.cookies = dict(person.client.cookies)
        self.chat_id = chat_id
        self.pages: list[tuple[float, int]] = []  # (asked at, status)
        self.lists: list[tuple[float, bool]] = []  # (asked at, chat listed)
        self._stop = asyncio.Event()
        limits = [(None, 5, 20, 100)[n % 4] for n in range(pages)]
        self._tasks = [asyncio.ensure_future(self._page(limit)) for limit in limits]
        self._tasks += [asyncio.ensure_future(self._list()) for _ in range(lists)]

    async def _page(self, limit) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            response = await self.client.get(f"/api/chats/{self.chat_id}", params={"limit": limit} if limit else None)
            if response.code != 200:
                assert_error(response, 403)
            self.pages.append((asked, response.code))

    async def _list(self) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            chats = await read_list(self.client)
            self.lists.append((asked, self.chat_id in [c["id"] for c in chats]))

    async def until_asked_after(self, moment: float, count: int) -> None:
        """Returns once `count` page reads asked after `moment` have been answered (and some list reads)."""
        deadline = time.monotonic() + 20
        while sum(asked > moment for asked, _ in self.pages) < count or not [a for a, _ in self.lists if a > moment]:
            if any(task.done() for task in self._tasks) or time.monotonic() > deadline:
                await self.stop()
                raise AssertionError(f"the reads stopped: {len(self.pages)} answered")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._stop.set()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            self._http.close()

    def after(self, moment: float) -> tuple[list[int], list[bool]]:
        """The statuses and listings of the reads asked after `moment`."""
        return [s for a, s in self.pages if a > moment], [listed for a, listed in self.lists if a > moment]


async def assert_refused_for_good(client, chat_id: int) -> None:
    """Fifty more concurrent reads: all 403, and the chat not listed."""
    answers = await asyncio.gather(*(client.get(f"/api/chats/{chat_id}") for _ in range(50)))
    assert [error_status(a) for a in answers] == [403] * 50
    assert chat_id not in [c["id"] for c in await read_list(client)]


async def assert_refused_after(reads, removed_at: float, since: float, what: str, client, chat_id: int) -> None:
    """The loop read the page before the removal, every read asked after
    `since` was refused and showed no chat, and so is every read from now on."""
    await reads.until_asked_after(since, 100)
    await reads.stop()
    assert 200 in [status for asked, status in reads.pages if asked < removed_at]  # it was reading
    pages, lists = reads.after(since)
    assert set(pages) == {403}, f"{pages.count(200)} of {len(pages)} reads asked after {what} got the page"
    assert not any(lists), f"{sum(lists)} of {len(lists)} lists asked after {what} showed the chat"
    await assert_refused_for_good(client, chat_id)


@pytest.mark.gen_test(timeout=60)
async def test_a_member_removed_is_refused_at_once_on_the_same_process(http_client, base_url):
    s = await Scene.build(http_client, base_url)
    reads = ReadLoop(s.bob, base_url, s.chat)
    await reads.until_asked_after(0, 50)
    await s.remove(s.alice, s.chat, s.bob)
    removed_at = time.monotonic()
    assert error_status(await s.bob.reader(base_url).get(f"/api/chats/{s.chat}")) == 403
    await assert_refused_after(reads, removed_at, removed_at, "the removal", s.bob.reader(base_url), s.chat)


@pytest.mark.gen_test(timeout=110)
async def test_a_member_removed_through_one_process_is_refused_on_the_other_for_good(
    two_servers, http_client, sync_redis
):
    first, second = two_servers
    s = await Scene.build(http_client, first.base)
    socket = await Listener.open(second.base, s.bob.reader(second.base), sync_redis)
    reads = ReadLoop(s.bob, second.base, s.chat)
    await reads.until_asked_after(0, 50)
    await s.remove(s.alice, s.chat, s.bob)  # through the first process
    removed_at = time.monotonic()
    assert error_status(await s.bob.reader(first.base).get(f"/api/chats/{s.chat}")) == 403
    # The other process has the removal once it has told bob's socket there.
    await socket.wait_until(
        lambda: [e for e in socket.of_chat(s.chat) if e["type"] == "member_removed"],
        timeout=POLL_SECS,
        what="member_removed on the other process",
    )
    told_at = time.monotonic()
    socket.close()
    await assert_refused_after(reads, removed_at, told_at, "the event", s.bob.reader(second.base), s.chat)


# Reads racing writes.


@pytest.mark.gen_test(timeout=60)
async def test_reads_racing_writes_never_miss_a_write_that_has_returned(http_client, base_url):
    s = await Scene.build(http_client, base_url)
    http = AsyncHTTPClient(force_instance=True, max_clients=40)
    seen: list[tuple[float, str, object, int]] = []  # (asked at, who, which read, newest message id shown)
    stop = asyncio.Event()

    async def read(person: Person, which) -> None:
        client = ApiClient(http, base_url)
        client.cookies = dict(person.client.cookies)
        while not stop.is_set():
            asked = time.monotonic()
            if which == "list":
                newest = {c["id"]: c for c in await read_list(client)}[s.chat]["last_message_id"]
            else:
                newest = (await read_page(client, s.chat, limit=which))[-1][0]
            seen.append((asked, person.name, which, newest))

    readers = [asyncio.ensure_future(read(p, which)) for p in s.people[:3] for which in ("list", None, 5, "list", 20)]
    written: list[tuple[float, int]] = []  # (answered at, message id)
    try:
        for n in range(100):  # each while reads that filled the caches before it are still under way
            message_id = await s.send(s.people[n % 3], s.chat, f"racing {n}")
            written.append((time.monotonic(), message_id))
    finally:
        stop.set()
        await asyncio.gather(*readers)
        http.close()

    def must_show(asked: float) -> int:
        return max([m for answered, m in written if answered < asked], default=0)

    stale = [(who, which, newest, must_show(asked)) for asked, who, which, newest in seen if newest < must_show(asked)]
    assert len([1 for asked, *_ in seen if asked > written[0][0]]) > 200  # the reads did race the writes
    assert not stale, f"{len(stale)} of {len(seen)} reads missed a write that had returned: {stale[:10]}"


# The chat list's order and history's paging around the cached page.


@pytest.mark.gen_test(timeout=60)
async def test_the_chat_list_reorders_at_once(http_client, base_url):
    s = await Scene.build(http_client, base_url)
    with_bob, with_carol, with_both = [await s.create(s.alice, f"chat {n}") for n in (1, 2, 3)]
    await s.add(s.alice, with_bob, s.bob)
    await s.add(s.alice, with_carol, s.carol)
    await s.add(s.alice, with_both, s.bob)
    await s.add(s.alice, with_both, s.carol)
    for chat_id in (with_bob, with_carol, with_both):
        await s.send(s.alice, chat_id, f"first in {chat_id}")
    order = [with_both, with_carol, with_bob, s.chat]  # newest activity first

    async def check(what: str) -> None:
        for attempt in ("first", "second"):
            for person in (s.alice, s.bob, s.carol):
                chats = await read_list(person.reader(base_url))
                mine = [c for c in order if person.id in s.world.chats[c].members]
                assert [c["id"] for c in chats] == mine, f"{what}: {attempt} read of {person.name}'s list"
            assert_views(await s.views(base_url), s.expected(), f"{what}: {attempt} read")

    def to_top(chat_id: int) -> None:
        if chat_id in order:
            order.remove(chat_id)
        order.insert(0, chat_id)

    def to_bottom(chat_id: int) -> None:
        order.remove(chat_id)
        order.append(chat_id)

    await check("before")
    steps = [
        ("bob writes in the oldest chat", lambda: s.send(s.bob, s.chat, "up"), lambda _: to_top(s.chat)),
        ("carol writes by socket", lambda: s.send_over_socket(s.carol, with_carol, "me too"), lambda _: to_top(with_carol)),
        ("an edit moves nothing", lambda: s.edit(s.alice, with_bob, s.message(with_bob, -1), "edited"), None),
        ("a rename moves nothing", lambda: s.rename(s.bob, with_both, "renamed"), None),
        ("bob creates a chat", lambda: s.create(s.bob, "bob's own"), to_top),
        ("alice writes in the chat with bob", lambda: s.send(s.alice, with_bob, "hi bob"), lambda _: to_top(with_bob)),
        # Back to m24, said before any other chat was made: the bottom of every list.
        ("bob deletes his newest", lambda: s.delete(s.bob, s.chat, s.message(s.chat, -1), by_path=True), lambda _: to_bottom(s.chat)),
    ]  # fmt: skip
    for what, write, moves in steps:
        await asyncio.sleep(0.002)  # a new millisecond: the order has no ties to break
        result = await write()
        if moves:
            moves(result)
        await check(what)


@pytest.mark.gen_test(timeout=60)
async def test_history_pages_around_the_cached_page(http_client, base_url):
    s = await Scene.build(http_client, base_url)
    for n in range(SCENE_MESSAGES + 1, DEFAULT_LIMIT + 31):
        await s.send(s.alice if n % 2 else s.bob, s.chat, f"m{n}")
    chat = s.world.chats[s.chat]
    readers = [s.bob.reader(base_url), s.carol.reader(base_url)]

    async def check(what: str) -> None:
        rows = chat.rows()
        ids = [r[0] for r in rows]
        for limit in (10, 50, 5, DEFAULT_LIMIT, None, DEFAULT_LIMIT + 20, 1000, 1):
            for reader in readers:
                for attempt in ("first", "second"):
                    got = await read_page(reader, s.chat, limit=limit)
                    assert got == rows[-(limit or DEFAULT_LIMIT) :], f"{what}: limit={limit}, {attempt} read"
        for params, expected in [
            ({"before": ids[-10], "limit": 10}, rows[-20:-10]),
            ({"before": ids[-1]}, rows[-1 - DEFAULT_LIMIT : -1]),
            ({"before": ids[5], "limit": 3}, rows[2:5]),
            ({"after": ids[-3]}, rows[-2:]),
            ({"after": ids[0], "before": ids[4]}, rows[1:4]),
        ]:
            assert await read_page(readers[0], s.chat, **params) == expected, f"{what}: {params}"

    await check("before any change")
    await s.send(s.carol, s.chat, "one more")
    await check("after a send")
    # Inside the newest page: the message below the page moves into it.
    await s.delete(s.alice, s.chat, next(m for m in chat.messages[-50:] if m.sender == s.alice.id), by_path=False)
    await check("after a deletion")
    await s.edit(s.bob, s.chat, next(m for m in chat.messages[-10:] if m.sender == s.bob.id), "edited")
    await check("after an edit")

    # A chat whose whole history fits in the default page, then just does not.
    small = await s.create(s.alice, "small")
    await s.add(s.alice, small, s.bob)
    for n in range(DEFAULT_LIMIT - 1):
        await s.send(s.alice, small, f"s{n}")
    for what, write in [
        ("one short of a page", None),
        ("a full page", lambda: s.send(s.bob, small, "the 100th")),
        ("one over a page", lambda: s.send(s.bob, small, "the 101st")),
        ("a full page again", lambda: s.delete(s.bob, small, s.message(small, -1), by_path=True)),
    ]:
        if write:
            await write()
        rows = s.world.chats[small].rows()
        for limit in (1000, None, 10, DEFAULT_LIMIT + 1):
            for attempt in ("first", "second"):
                got = await read_page(readers[0], small, limit=limit)
                assert got == rows[-(limit or DEFAULT_LIMIT) :], f"{what}: limit={limit}, {attempt} read"
