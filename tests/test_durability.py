"""Durability end to end: redis-server is SIGKILLed in the middle of a burst
of sends and restarted on the same data directory (the embedded setup:
redis.conf, AOF with `appendfsync always`). Every send answered 201 is
still there exactly once, and the server carries on by itself."""

import threading
import time
from collections import Counter

import pytest
import requests

from server.embedded_redis import EmbeddedRedis

from .processes import RunningServer
from .redis_clients import sync_client

SENDERS = 6
MAX_SENDS_EACH = 100  # bounds the burst (and keeps the history within one page)
KILL_AFTER_SENDS = 60  # acknowledged sends before the kill
DOWN_SECS = 0.5
RECOVERY_SECS = 10.0
SENDS_AFTER_RESTART = 3  # each sender's, before the burst stops
RETRY_PAUSE_SECS = 0.05
UNAVAILABLE = {"error": "storage is unavailable, try again shortly"}


class Sender(threading.Thread):
    """One user sending numbered messages to the chat, one at a time, until told to stop."""

    def __init__(self, session: requests.Session, chat_url: str, name: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.session, self.chat_url, self.name, self.stopping = session, chat_url, name, stop
        self.outcomes: list[tuple[float, str, int | None, object]] = []  # (time, content, status, body or error)

    def run(self):
        for number in range(MAX_SENDS_EACH):
            if self.stopping.is_set():
                return
            content = f"{self.name} #{number}"
            try:
                response = self.session.post(self.chat_url, data={"content": content}, timeout=10)
                status, body = response.status_code, _json_or_text(response)
            except (requests.ConnectionError, requests.Timeout) as exc:  # the connection dropped: allowed, not a 500
                status, body = None, exc
            self.outcomes.append((time.monotonic(), content, status, body))
            if status != 201:
                time.sleep(RETRY_PAUSE_SECS)  # as a client would, rather than spend its budget at once

    def acknowledged(self, since: float = 0.0) -> list[tuple[str, int]]:
        """(content, id) of each send answered 201 after `since`."""
        return [(content, body["id"]) for at, content, status, body in self.outcomes if status == 201 and at > since]


def _json_or_text(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return response.text  # not JSON: the assertions show it as it came


@pytest.fixture
def embedded_redis(tmp_path):
    server = EmbeddedRedis(str(tmp_path / "redis"))  # the repository's redis.conf, as run.py starts it
    server.start()
    yield server
    server.stop()


@pytest.fixture
def chat_server(embedded_redis, tmp_path):
    data_dir = str(tmp_path / "data")
    server = RunningServer("--redis-url", embedded_redis.url, "--data-dir", data_dir, "--rate-limits", "off")
    yield server
    assert server.stop() == 0


def register(base: str, name: str) -> tuple[requests.Session, int]:
    session = requests.Session()
    response = session.post(f"{base}/api/reg", data={"name": name, "password": "long enough", "email": f"{name}@x.org"})
    assert response.status_code == 201, response.text
    return session, int(session.cookies["user_id"])


def start_burst(base: str, stop: threading.Event) -> tuple[list[Sender], str]:
    """SENDERS users in one chat, each sending from its own thread and session."""
    owner, _ = register(base, "owner")
    chat_url = base + owner.post(f"{base}/api/chats", data={"title": "durable"}).headers["Location"]
    senders = []
    for index in range(SENDERS):
        session, user_id = register(base, f"sender{index}")
        assert owner.post(chat_url + "/members", data={"user_id": user_id}).status_code == 201
        senders.append(Sender(session, chat_url, f"sender{index}", stop))
    for sender in senders:
        sender.start()
    return senders, chat_url


def wait_for(condition, seconds: float, what: str, senders: list[Sender]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        last = [sender.outcomes[-1][2:] if sender.outcomes else None for sender in senders]
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last answers: {last}"
        time.sleep(0.02)


def test_acknowledged_sends_survive_a_redis_crash_mid_burst(embedded_redis, chat_server):
    with sync_client(embedded_redis.url) as client:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}  # the embedded default
    stop = threading.Event()
    senders, chat_url = start_burst(chat_server.base, stop)
    try:
        wait_for(lambda: sum(len(s.acknowledged()) for s in senders) >= KILL_AFTER_SENDS, 30, "the burst", senders)
        embedded_redis.process.kill()  # SIGKILL: no shutdown, no final AOF flush
        embedded_redis.process.wait()
        time.sleep(DOWN_SECS)
        embedded_redis.start()  # same data directory and socket; run.py is not restarted
        restarted = time.monotonic()
        wait_for(lambda: all(len(s.acknowledged(restarted)) >= SENDS_AFTER_RESTART for s in senders),
                 RECOVERY_SECS, "sends to succeed again after the restart", senders)  # fmt: skip
    finally:
        stop.set()
        for sender in senders:
            sender.join(30)

    assert_every_acknowledged_send_kept_once(senders, chat_url)


def assert_every_acknowledged_send_kept_once(senders: list[Sender], chat_url: str) -> None:
    outcomes = [outcome for sender in senders for outcome in sender.outcomes]
    refused = [(status, body) for _, _, status, body in outcomes if status != 201]
    assert refused, "the kill missed the burst: no send was refused"
    for status, body in refused:  # in flight or sent while Redis was down: a JSON 503, never a 500
        assert status is None or (status, body) == (503, UNAVAILABLE), (status, body)

    history = requests.get(chat_url, params={"limit": 1000}, cookies=senders[0].session.cookies, timeout=10)
    messages = history.json()["messages"]
    ids = [message["id"] for message in messages]
    assert ids == sorted(set(ids))  # unique and increasing
    by_id = {message["id"]: message["content"] for message in messages}
    for sender in senders:
        acknowledged = sender.acknowledged()
        assert [by_id.get(message_id) for _, message_id in acknowledged] == [content for content, _ in acknowledged]
        assert [message_id for _, message_id in acknowledged] == sorted({i for _, i in acknowledged})
    # A refused send may have been stored (its answer was lost in the crash), but never twice.
    stored = Counter(by_id.values())
    assert all(count == 1 for count in stored.values()), stored.most_common(3)
    assert set(stored) <= {content for _, content, _, _ in outcomes}
