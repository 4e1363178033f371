"""One deadline per request for its Redis work: a stuck Redis is a prompt 503,
while time spent waiting for bcrypt does not count against it."""

import asyncio
import time

import pytest

from server.settings import Settings

DEADLINE_SECS = 0.1


@pytest.fixture
def settings():
    # Real bcrypt cost: each hash takes far longer than the deadline.
    return Settings(bcrypt_cost=12, redis_timeout_secs=DEADLINE_SECS)


@pytest.mark.gen_test(timeout=60)
async def test_password_hashing_does_not_count_against_the_deadline(new_client):
    client = new_client()
    started = time.monotonic()
    assert (await client.register()).code == 201
    assert time.monotonic() - started > DEADLINE_SECS  # bcrypt really took longer
    assert (await client.post("/api/login", {"name": client.name, "password": "correct horse"})).code == 200


@pytest.mark.gen_test(timeout=60)
async def test_a_stuck_redis_gets_a_prompt_json_503(make_user, sync_redis):
    alice = await make_user()
    chat = (await alice.post("/api/chats", {"title": "stuck"})).headers["Location"]
    sync_redis.client_pause(3000, all=True)  # every client's commands wait (on a cluster, on every node)
    started = time.monotonic()
    response = await alice.post(chat, {"content": "anyone?"})
    waited = time.monotonic() - started
    assert response.code == 503 and response.json() == {"error": "storage is unavailable, try again shortly"}
    assert DEADLINE_SECS <= waited < DEADLINE_SECS + 1.0
    await asyncio.sleep(3.0)  # let the pause end: Redis then serves the client again
    assert (await alice.get(chat)).code == 200


@pytest.mark.gen_test(timeout=120)
async def test_deleting_an_account_in_many_chats_is_not_cut_short(new_client, storage, sync_redis):
    # Setup, not what is tested: under a loaded CI machine a fresh cluster
    # client's first requests can miss this 0.1 s deadline, so try again.
    for _ in range(5):
        alice = new_client()
        if (await alice.register()).code == 201:
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail("could not register within the deadline five times")
    for index in range(1000):  # leaving them all takes several deadlines' worth
        await storage.chats.create(alice.user_id, f"chat {index}")
    started = time.monotonic()
    response = await alice.delete(f"/api/user/{alice.user_id}")
    assert response.code == 200, response
    assert time.monotonic() - started > DEADLINE_SECS
    assert sync_redis.keys("chat:*") == [] and sync_redis.keys(f"user:{{{alice.user_id}}}*") == []


@pytest.mark.gen_test(timeout=60)
async def test_a_busy_creation_lock_is_a_409_not_a_503(make_user, sync_redis):
    alice = await make_user()
    sync_redis.set(f"user:{{{alice.user_id}}}:lock:create_chat", "held by someone else", px=5000)
    response = await alice.post("/api/chats", {"title": "later"})
    assert response.code == 409 and response.json() == {"error": "another chat is being created; try again"}
