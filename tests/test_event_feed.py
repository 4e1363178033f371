"""The process's pub/sub feed on its own: subscriptions stay true to who is listening."""

import asyncio

import pytest

from storage import keys


def numsub(sync_redis, user_id):
    channel = keys.user_events_channel(user_id)
    return dict(sync_redis.pubsub_numsub(channel))[channel]


@pytest.mark.gen_test(timeout=60)
async def test_a_subscribe_during_a_reconnect_is_not_lost(storage, sync_redis):
    feed = storage.feed
    for user_id in range(100, 120):
        sync_redis.client_kill_filter(_type="pubsub")
        await asyncio.sleep(0.001 * (user_id % 7))  # land at different points of the reconnect
        await feed.subscribe(user_id)
        while not feed.connected:
            await asyncio.sleep(0.01)
        await feed.subscribe(user_id)  # returns once confirmed
        assert numsub(sync_redis, user_id) == 1, user_id


@pytest.mark.gen_test
async def test_unsubscribing_before_the_confirmation_then_resubscribing_holds(storage, sync_redis):
    feed = storage.feed
    received = []
    feed.on_user_event = lambda user_id, event: received.append((user_id, event))
    pending = asyncio.ensure_future(feed.subscribe(7))
    await asyncio.sleep(0)  # the SUBSCRIBE is on its way
    feed.unsubscribe(7)
    await pending
    await feed.subscribe(7)
    assert numsub(sync_redis, 7) == 1
    sync_redis.publish(keys.user_events_channel(7), "hello")
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.01)
    assert received == [(7, "hello")]
