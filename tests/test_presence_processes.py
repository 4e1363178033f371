"""Presence when a server process dies without a goodbye (SIGKILL)."""

import os
import signal
import time

import pytest

from .processes import RunningServer, user_on
from .test_typing_presence import chat_of, presence_event, socket_on, watch
from .wsclient import open_socket

TTL_SECS = 3


@pytest.mark.gen_test(timeout=60)
async def test_the_users_of_a_killed_process_go_offline_within_the_ttl_and_a_third(
    redis_url, sync_redis, tmp_path, http_client
):
    common = ("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off",
              "--presence-ttl-secs", str(TTL_SECS))  # fmt: skip
    doomed, survivor = RunningServer(*common), RunningServer(*common)
    try:
        alice, bob = await user_on(http_client, survivor), await user_on(http_client, survivor)
        chat_id = await chat_of(alice, bob)
        watcher = await socket_on(survivor.base, alice, sync_redis)
        await open_socket(doomed.base, bob.cookies)
        assert (await watch(watcher, [bob.user_id]))[1] == {bob.user_id: True}

        os.kill(doomed.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        # Nobody announces it: the survivor sees the claim lapse when it re-reads.
        assert await presence_event(watcher, timeout=TTL_SECS * 1.5 + 1) == (bob.user_id, False)
        assert time.monotonic() - killed <= TTL_SECS * 4 / 3 + 0.5
        members = (await alice.get(f"/api/chats/{chat_id}/members")).json()["members"]
        assert {m["id"]: m["online"] for m in members}[bob.user_id] is False
    finally:
        doomed.stop()
        assert survivor.stop() == 0
