"""The read cache's own promises: it answers repeated reads from memory (and
says so in /metrics), stays within --read-cache-mb by dropping the least
recently used entries together with the subscriptions they held, empties
itself when a pub/sub connection is lost, and can be turned off.
(Staleness after every kind of write: test_read_cache.py.)"""

import asyncio

import orjson
import pytest

from server.app import make_storage
from server.settings import Settings

from .api_helpers import create_chat, send
from .test_chat_log import chat_subscribers
from .test_ops import sample, scrape

BIG_CONTENT = "x" * 3000  # a page of 100 of these is about 300 kB


@pytest.fixture
def settings(request):
    """The suite's settings, with this test's --read-cache-mb (default: as shipped)."""
    return Settings(bcrypt_cost=4, rate_limits=False, read_cache_mb=getattr(request, "param", Settings.read_cache_mb))


async def until_cached(cache, kind: str, read) -> int:
    """Reads until one is answered from the cache (a miss only starts the
    subscriptions: the read after their confirmation fills it); the reads it took."""
    for reads in range(1, 201):
        hits = cache.hits[kind]
        await read()
        if cache.hits[kind] > hits:
            return reads
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} read was ever a hit")


async def warm(storage, client, chat_id: int) -> None:
    """Reads the user's list and the chat's page until each is served from the cache."""

    async def read_list():
        assert (await client.get("/api/chats")).code == 200

    async def read_page():
        assert (await client.get(f"/api/chats/{chat_id}", params={"limit": 20})).code == 200

    await until_cached(storage.read_cache, "chats", read_list)
    await until_cached(storage.read_cache, "history", read_page)


@pytest.mark.gen_test
async def test_repeated_reads_are_hits_in_the_metrics(make_user, storage):
    alice = await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "hello")
    await warm(storage, alice, chat_id)
    before = await scrape(alice)
    for _ in range(3):
        assert (await alice.get("/api/chats")).code == 200
        assert (await alice.get(f"/api/chats/{chat_id}", params={"limit": 20})).code == 200
    after = await scrape(alice)
    for kind in ("chats", "history"):
        for counted, expected in (("hits", 3), ("misses", 0)):
            name = f"chat_read_cache_{counted}_total"
            assert sample(after, name, kind=kind) - sample(before, name, kind=kind) == expected, (kind, counted)
    assert sample(after, "chat_read_cache_entries") == 2
    assert 0 < sample(after, "chat_read_cache_bytes") <= sample(after, "chat_read_cache_limit_bytes")


@pytest.mark.parametrize("settings", [0], indirect=True)
@pytest.mark.gen_test
async def test_with_the_cache_off_every_read_goes_to_redis(make_user, storage):
    alice = await make_user()
    chat_id = await create_chat(alice)
    await send(alice, chat_id, "one")
    for _ in range(2):
        assert (await alice.get("/api/chats")).code == 200
        assert (await alice.get(f"/api/chats/{chat_id}", params={"limit": 20})).code == 200
    await send(alice, chat_id, "two")
    shown = (await alice.get(f"/api/chats/{chat_id}")).json()["messages"]
    assert [m["content"] for m in shown] == ["one", "two"]
    cache = storage.read_cache
    assert cache.hits == {"chats": 0, "history": 0} and cache.misses["history"] == 3
    assert (cache.entry_count, cache.size) == (0, 0)


@pytest.mark.parametrize("settings", [1], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_the_cap_drops_the_least_recently_used_with_their_subscriptions(storage, sync_redis):
    alice = await storage.users.register("alice", "alice@example.org", "correct horse")
    chats = [await storage.chats.create(alice, f"big {n}") for n in range(5)]
    for chat_id in chats:
        for _ in range(storage.read_cache.page_messages):
            await storage.messages.send(alice, chat_id, BIG_CONTENT)
    cache = storage.read_cache
    for chat_id in chats:  # five pages of ~300 kB under a 1 MB cap: three fit
        await until_cached(cache, "history", lambda: storage.messages.history(alice, chat_id, limit=10))
    assert cache.evictions == 2 and cache.entry_count == 3
    assert cache.size <= cache.max_bytes
    # The evicted pages' channels are let go (Redis hears of it a moment later).
    for _ in range(200):
        if [chat_subscribers(sync_redis, c) for c in chats] == [0, 0, 1, 1, 1]:
            break
        await asyncio.sleep(0.01)
    assert [chat_subscribers(sync_redis, c) for c in chats] == [0, 0, 1, 1, 1]
    # The oldest is read from Redis again, and once cached pushes out the next least recently used.
    hits = cache.hits["history"]
    assert len(await storage.messages.history(alice, chats[0], limit=10)) == 10
    assert cache.hits["history"] == hits
    await until_cached(cache, "history", lambda: storage.messages.history(alice, chats[0], limit=10))
    assert cache.evictions == 3
    hits = cache.hits["history"]
    assert len(await storage.messages.history(alice, chats[4], limit=10)) == 10
    assert cache.hits["history"] == hits + 1


@pytest.mark.gen_test(timeout=60)
async def test_a_lost_pubsub_connection_empties_the_cache(storage, sync_redis):
    alice = await storage.users.register("alice", "alice@example.org", "correct horse")
    chat_id = await storage.chats.create(alice, "chat")
    await storage.messages.send(alice, chat_id, "hello")
    cache = storage.read_cache
    await until_cached(cache, "chats", lambda: storage.chats.list_for(alice))
    await until_cached(cache, "history", lambda: storage.messages.history(alice, chat_id, limit=10))
    assert sync_redis.client_kill_filter(_type="pubsub") >= 1
    while storage.feed.connected:  # the process notices the loss
        await asyncio.sleep(0.01)
    misses = dict(cache.misses)
    assert [c["id"] for c in await storage.chats.list_for(alice)] == [chat_id]
    assert len(await storage.messages.history(alice, chat_id, limit=10)) == 1
    assert cache.misses == {kind: count + 1 for kind, count in misses.items()}
    # Once the subscriptions are confirmed again it fills as before.
    await until_cached(cache, "chats", lambda: storage.chats.list_for(alice))


@pytest.mark.gen_test(timeout=60)
async def test_lists_that_take_messages_in_place_equal_a_fresh_read(storage, redis_client, settings):
    """Messages sent here (taken at once) and through another process (taken
    from their events) leave every cached list exactly as Redis would answer it."""
    other = make_storage(redis_client, settings)  # a second process's storage, on the same Redis
    await other.prepare()
    other.start()
    try:
        users = [await storage.users.register(f"user{n}", f"user{n}@example.org", "correct horse") for n in range(3)]
        chats = []
        for n in range(3):
            chat_id = await storage.chats.create(users[n], f"chat {n}")
            for member in users:
                if member != users[n]:
                    await storage.chats.add_member(users[n], chat_id, member)
            chats.append(chat_id)
        cache = storage.read_cache
        for user_id in users:
            await until_cached(cache, "chats", lambda: storage.chats.list_for(user_id))
        for n in range(12):
            through, chat_id = (storage if n % 2 else other), chats[n * 7 % 3]
            sent = await through.messages.send(users[n % 3], chat_id, f"message {n}")
            if n == 5:
                await storage.chats.mark_read(users[0], chats[1], 1)  # a read marker in between
            for user_id in users:  # at once, or within the pub/sub delay (the other process's)
                for _ in range(250):
                    hits = cache.hits["chats"]
                    listed = {c["id"]: c for c in await storage.chats.list_for(user_id)}
                    # Only users[0]'s read marker moved: the others' lists are never read again.
                    assert cache.hits["chats"] == hits + 1 or user_id == users[0], (n, user_id)
                    if listed[chat_id]["last_message_id"] == sent.message_id:
                        break
                    await asyncio.sleep(0.02)
        for user_id in users:
            fresh = orjson.dumps(await storage.chats._read_list(user_id, await storage.chats.ids_of(user_id)))
            assert await storage.chats.list_json(user_id) == fresh, user_id
    finally:
        await other.stop()
