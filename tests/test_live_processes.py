"""Live delivery across real server processes sharing one Redis."""

import signal

import pytest

from .processes import RunningServer, user_on
from .redis_clients import settle_pubsub
from .wsclient import closed, next_event, open_socket






@pytest.mark.gen_test(timeout=60)
async def test_a_message_posted_on_one_process_reaches_a_socket_on_the_other(two_servers, http_client, sync_redis):
    first, second = two_servers
    alice = await user_on(http_client, first)
    bob = await user_on(http_client, second)
    chat_id = (await alice.post("/api/chats", {"title": "across"})).json()["id"]
    await alice.post(f"/api/chats/{chat_id}/members", {"user_id": bob.user_id})
    # Alice's requests go to the first process and her socket is on the
    # second; bob the other way round. Each event below crosses processes.
    settle_pubsub(sync_redis)  # on a cluster, the setup's events may still be on their way
    bob_socket = await open_socket(first.base, bob.cookies)
    alice_socket = await open_socket(second.base, alice.cookies)

    assert (await alice.post(f"/api/chats/{chat_id}", {"content": "from the first process"})).code == 201
    event = await next_event(alice_socket, timeout=1.0)
    assert event["message"]["content"] == "from the first process"
    assert (await next_event(bob_socket, timeout=1.0))["message"]["id"] == event["message"]["id"]

    await bob.put(f"/api/chats/{chat_id}", {"title": "renamed on the second"})
    assert (await next_event(alice_socket, timeout=1.0))["title"] == "renamed on the second"
    assert (await next_event(bob_socket, timeout=1.0))["title"] == "renamed on the second"

    await alice.delete(f"/api/chats/{chat_id}/members", {"user_id": bob.user_id})
    assert (await next_event(bob_socket, timeout=1.0))["type"] == "member_removed"
    await alice.post(f"/api/chats/{chat_id}", {"content": "bob is gone"})
    own = (await bob.post("/api/chats", {"title": "bob alone"})).json()["id"]
    assert (await next_event(bob_socket, timeout=1.0)) == {"type": "chat_created", "chat_id": own, "title": "bob alone"}


@pytest.mark.gen_test(timeout=60)
async def test_logout_on_one_process_closes_the_socket_on_the_other(two_servers, http_client):
    first, second = two_servers
    alice = await user_on(http_client, first)
    socket = await open_socket(second.base, alice.cookies)
    assert (await alice.get("/api/logout")).code == 200
    assert await closed(socket) == 4001


@pytest.mark.gen_test(timeout=90)
async def test_workers_share_one_port_and_stop_together(http_client, tmp_path):
    server = RunningServer("--workers", "2", "--data-dir", str(tmp_path / "data"))
    try:
        workers = [pid for pid in server.children() if "run.py" in open(f"/proc/{pid}/cmdline").read()]
        assert len(workers) == 2
        alice, bob = await user_on(http_client, server), await user_on(http_client, server)
        chat_id = (await alice.post("/api/chats", {"title": "workers"})).json()["id"]
        await alice.post(f"/api/chats/{chat_id}/members", {"user_id": bob.user_id})
        sockets = [await open_socket(server.base, bob.cookies) for _ in range(6)]  # spread over both
        await alice.post(f"/api/chats/{chat_id}", {"content": "everyone"})
        for socket in sockets:
            assert (await next_event(socket, timeout=1.0))["message"]["content"] == "everyone"
    finally:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    assert server.children() == []
    assert not (tmp_path / "data" / "redis.sock").exists()
