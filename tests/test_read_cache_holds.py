"""The read cache holds every channel its entries need, whoever else held it
first: when the hub (a socket) lets go of a channel, the cache keeps hearing
it. Two storages on one Redis stand for two processes; `feed.subscribe` and
`unsubscribe` with the default holder are what the hub does for a socket."""

import asyncio

import orjson
import pytest

from server.app import make_storage
from storage.errors import Forbidden

from .apiclient import unique_name
from .test_chat_log import chat_subscribers
from .test_read_cache_bounds import until_cached

POLL_SECS = 5.0


@pytest.fixture
def other(io_loop, redis_client, settings):
    """A second process's storage on the same Redis."""
    other = make_storage(redis_client, settings)

    async def start():
        await other.prepare()
        other.start()
        while not other.feed.connected:
            await asyncio.sleep(0.005)

    io_loop.run_sync(start)
    yield other
    io_loop.run_sync(other.stop)


async def new_user(storage) -> int:
    return await storage.users.register(unique_name("u"), "u@example.org", "correct horse")


async def let_go_of_chat(storage, sync_redis, chat_id: int) -> None:
    """The socket's hold on the chat ends; returns once Redis has dropped the
    subscription, if nothing else holds it (at most a second: the cache may)."""
    storage.feed.unsubscribe_chat(chat_id)
    for _ in range(50):
        if chat_subscribers(sync_redis, chat_id) == 0:
            return
        await asyncio.sleep(0.02)


async def until_true(check) -> None:
    """Polls `check` (a coroutine function) for up to POLL_SECS: a cache that stays stale fails."""
    for _ in range(int(POLL_SECS / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    assert await check()


@pytest.mark.gen_test(timeout=30)
async def test_a_list_stays_current_after_a_socket_let_go_of_its_channels(storage, other, sync_redis):
    u, v = await new_user(storage), await new_user(storage)
    chat = await storage.chats.create(u, "t")
    await storage.chats.add_member(u, chat, v)
    assert await storage.feed.subscribe(u) and await storage.feed.subscribe_chat(chat)  # u's socket here
    await until_cached(storage.read_cache, "chats", lambda: storage.chats.list_for(u))
    storage.feed.unsubscribe(u)  # the socket closes
    await let_go_of_chat(storage, sync_redis, chat)
    await other.messages.send(v, chat, "through the other process")
    await other.chats.add_member(v, new := await other.chats.create(v, "v's"), u)

    async def fresh() -> bool:
        expected = await storage.chats._read_list(u, await storage.chats.ids_of(u))
        return await storage.chats.list_json(u) == orjson.dumps(expected)

    await until_true(fresh)
    assert {c["id"] for c in await storage.chats.list_for(u)} == {chat, new}


@pytest.mark.gen_test(timeout=30)
async def test_a_member_removed_after_a_socket_let_go_is_refused(storage, other, sync_redis):
    owner, u = await new_user(storage), await new_user(storage)
    chat = await storage.chats.create(owner, "t")
    await storage.chats.add_member(owner, chat, u)
    await storage.messages.send(owner, chat, "before")
    assert await storage.feed.subscribe_chat(chat)  # a socket here follows the chat
    await until_cached(storage.read_cache, "history", lambda: storage.messages.history(u, chat, limit=20))
    await let_go_of_chat(storage, sync_redis, chat)  # that socket closes
    await other.chats.remove_member(owner, chat, u)  # through the other process

    async def refused() -> bool:
        try:
            await storage.messages.history(u, chat, limit=20)
        except Forbidden:
            return True
        return False

    await until_true(refused)
    await storage.messages.send(owner, chat, "after the removal")  # and the page is cached again for the owner
    await until_cached(storage.read_cache, "history", lambda: storage.messages.history(owner, chat, limit=20))
    with pytest.raises(Forbidden):
        await storage.messages.history(u, chat, limit=20)


@pytest.mark.gen_test(timeout=30)
async def test_a_fill_that_read_older_data_is_not_kept_over_a_newer_one(storage, other):
    """Two reads of one list race: the one that read Redis first finishes
    last, and the message between them is announced after the other's fill."""
    u, v = await new_user(storage), await new_user(storage)
    chat = await storage.chats.create(u, "t")
    await storage.chats.add_member(u, chat, v)
    cache, chats = storage.read_cache, storage.chats
    await until_cached(cache, "chats", lambda: chats.list_for(u))
    cache.user_changed(u)  # the next two reads both fill
    release = asyncio.Event()

    async def slow_read(user_id, chat_ids):
        listed = await chats._read_list(user_id, chat_ids)
        await release.wait()  # read before the message, answered after everything else
        return listed

    slow = asyncio.ensure_future(cache.chat_list(u, chats.ids_of, slow_read))
    await asyncio.sleep(0.05)
    # The message's event is held back (as a slow pub/sub connection would) ...
    held = []
    storage.feed.chat_event_listeners.remove(cache.chat_event)
    storage.feed.chat_event_listeners.append(lambda chat_id, text: held.append((chat_id, text)))
    await other.messages.send(v, chat, "newest")
    await until_true(lambda: asyncio.sleep(0, bool(held)))
    await cache.chat_list(u, chats.ids_of, chats._read_list)  # ... a fill after the message ...
    cache.chat_event(*held[0])  # ... the event arrives ...
    release.set()  # ... and the earlier fill finishes
    await slow
    (summary,) = await chats.list_for(u)
    assert (summary["last_message"], summary["unread_count"]) == ("newest", 1)
