"""SIGTERM in the middle of a burst of sends: nothing the server has read goes unanswered."""

import asyncio
import json
import re
import threading
import time
import uuid

import pytest
import requests

from storage import keys

from .processes import RunningServer
from .wsclient import closed, open_socket

GRACE_SECS = 10.0
THREADS = 4
SENDS_PER_THREAD = 50
SIGNAL_AFTER_ANSWERS = 40  # mid-burst: a fifth of the sends answered


def register(base: str) -> tuple[requests.Session, int, str]:
    session = requests.Session()
    name = "u_" + uuid.uuid4().hex[:10]
    response = session.post(base + "/api/reg",
                            data={"name": name, "password": "correct horse", "email": "a@example.org"})  # fmt: skip
    assert response.status_code == 201, response.text
    return session, response.json()["id"], name


def send_burst(session: requests.Session, url: str, tag: str, outcomes: list) -> None:
    """Sends one message after another; records (content, status, body) or (content, None, error)."""
    for number in range(SENDS_PER_THREAD):
        content = f"{tag}-{number}"
        try:
            response = session.post(url, data={"content": content}, timeout=30)
            outcomes.append((content, response.status_code, response.text))
        except requests.RequestException as exc:
            outcomes.append((content, None, exc))


def slow_registration(base: str, result: dict) -> None:
    """A registration (a bcrypt hash at cost 13) that is still running when the signal comes."""
    result["name"] = "slow_" + uuid.uuid4().hex[:8]
    try:
        fields = {"name": result["name"], "password": "correct horse", "email": "s@example.org"}
        response = requests.post(base + "/api/reg", data=fields, timeout=60)
        result["status"] = response.status_code
    except requests.RequestException as exc:
        result["status"] = exc
    result["answered_at"] = time.monotonic()


@pytest.fixture
def server(redis_url, sync_redis, tmp_path):
    # (bcrypt cost 13: the registration in flight takes long enough to be caught by the signal.)
    server = RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off",
                           "--bcrypt-cost", "13", "--shutdown-grace-secs", str(GRACE_SECS))  # fmt: skip
    yield server
    server.stop()


@pytest.mark.gen_test(timeout=120)
async def test_sigterm_answers_every_request_it_has_read(server, sync_redis):
    users = [register(server.base) for _ in range(THREADS)]
    owner = users[0][0]
    chat_id = owner.post(server.base + "/api/chats", data={"title": "shutdown"}).json()["id"]
    for _, user_id, _ in users[1:]:
        assert owner.post(server.base + f"/api/chats/{chat_id}/members", data={"user_id": user_id}).status_code == 201
    sockets = [await open_socket(server.base, session.cookies.get_dict()) for session, _, _ in users[:2]]
    idle = requests.Session()  # a kept-alive connection with nothing in flight: closed at once
    assert idle.get(server.base + "/metrics").status_code == 200

    slow: dict = {}
    threads = [threading.Thread(target=slow_registration, args=(server.base, slow))]
    threads[0].start()
    await asyncio.sleep(0.1)  # read by the server, and hashing
    outcomes = [[] for _ in users]
    url = server.base + f"/api/chats/{chat_id}"
    threads += [threading.Thread(target=send_burst, args=(session, url, f"t{index}", outcomes[index]))
                for index, (session, _, _) in enumerate(users)]  # fmt: skip
    for thread in threads[1:]:
        thread.start()
    await wait_for(lambda: sum(map(len, outcomes)) >= SIGNAL_AFTER_ANSWERS, "the burst did not get going")
    signalled_at = time.monotonic()
    server.process.terminate()

    assert [await closed(socket, timeout=GRACE_SECS) for socket in sockets] == [1001, 1001]
    assert await asyncio.to_thread(server.process.wait, GRACE_SECS + 5) == 0
    # Without waiting out the grace period for the idle connection.
    assert time.monotonic() - signalled_at < GRACE_SECS
    for thread in threads:
        await asyncio.to_thread(thread.join, 60)
        assert not thread.is_alive()

    # The registration read before the signal was finished and answered.
    assert slow["status"] == 201 and slow["answered_at"] > signalled_at, slow
    assert sync_redis.get(keys.name_key(slow["name"].lower())) is not None
    check_sends([o for per_thread in outcomes for o in per_thread], chat_id, server, sync_redis)


def check_sends(outcomes: list, chat_id: int, server, sync_redis) -> None:
    """Every send was answered 201 and stored, or refused without being stored."""
    answered = {content: json.loads(body) for content, status, body in outcomes if status is not None}
    assert {status for _, status, _ in outcomes if status is not None} <= {201}
    failed = {content: exc for content, status, exc in outcomes if status is None}
    # A complete answer or no connection at all: never a timeout or a cut-off answer.
    assert all(type(exc) is requests.ConnectionError for exc in failed.values()), failed
    refused = [content for content, exc in failed.items() if "Connection refused" in str(exc)]
    # A request sent on a kept-alive connection at the moment the server
    # closed it between requests is lost before the server read it (the
    # client gets a reset); each thread meets that at most once, then
    # reconnects and is refused.
    assert len(failed) - len(refused) <= THREADS, failed
    assert 0 < len(answered) < THREADS * SENDS_PER_THREAD and refused, "the signal did not come mid-burst"

    history = sync_redis.zrange(keys.chat_messages_key(chat_id), 0, -1, withscores=True)
    stored = {json.loads(message)["content"]: int(message_id) for message, message_id in history}
    assert {content: body["id"] for content, body in answered.items()} == stored
    assert not set(failed) & set(stored)
    server.log.seek(0)
    logged = re.findall(rf"POST /api/chats/{chat_id} 201 ", server.log.read().decode())
    assert len(logged) == len(answered)  # nothing answered on the server's side was lost on the way


async def wait_for(condition, message: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        await asyncio.sleep(0.005)


@pytest.mark.gen_test(timeout=60)
async def test_a_socket_send_in_flight_at_sigterm_is_acknowledged_before_1001(server, sync_redis):
    session, _, _ = register(server.base)
    chat_id = session.post(server.base + "/api/chats", data={"title": "socket shutdown"}).json()["id"]
    socket = await open_socket(server.base, session.cookies.get_dict())
    for number in range(2000):  # queued at once: the server works through them one by one
        socket.write_message(json.dumps({"op": "send", "chat_id": chat_id, "content": f"s{number}"}))
    acked: set[str] = set()
    while len(acked) < 20:
        event = json.loads(await socket.read_message())
        if event["type"] == "ack":
            acked.add(event["message_id"])
    server.process.terminate()
    while (raw := await asyncio.wait_for(socket.read_message(), GRACE_SECS)) is not None:
        event = json.loads(raw)
        if event["type"] == "ack":
            acked.add(event["message_id"])
    assert socket.close_code == 1001
    assert await asyncio.to_thread(server.process.wait, GRACE_SECS + 5) == 0
    stored = {int(i) for _, i in sync_redis.zrange(keys.chat_messages_key(chat_id), 0, -1, withscores=True)}
    assert 20 <= len(stored) < 2000, "the signal did not come mid-burst"
    assert stored == acked  # every message stored was acknowledged
