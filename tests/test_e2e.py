"""End to end: `run.py` started the way the README says, driven with requests."""

import os
import signal
import time

import pytest
import requests

from .processes import RunningServer


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


def register(base, name):
    session = requests.Session()
    response = session.post(f"{base}/api/reg", data={"name": name, "password": "long enough", "email": f"{name}@x.org"})
    assert response.status_code == 201, response.text
    return session, int(session.cookies["user_id"])


def test_the_whole_story_over_real_http(data_dir):
    server = RunningServer("--data-dir", data_dir)
    try:
        base = server.base
        ann, ann_id = register(base, "ann")
        ben, ben_id = register(base, "ben")
        created = ann.post(f"{base}/api/chats", data={"title": "plans"})
        assert created.status_code == 201 and created.headers["Location"].startswith("/api/chats/")
        chat = f"{base}{created.headers['Location']}"
        assert ann.post(chat + "/members", data={"name": "BEN"}).status_code == 201
        for i in range(5):
            assert ann.post(chat, data={"content": f"ann {i}"}).status_code == 201
            assert ben.post(chat, data={"content": f"ben {i}"}).status_code == 201
        newest = ben.get(chat, params={"limit": 4}).json()["messages"]
        assert [m["content"] for m in newest] == ["ann 3", "ben 3", "ann 4", "ben 4"]
        older = ben.get(chat, params={"limit": 4, "before": newest[0]["id"]}).json()["messages"]
        assert [m["content"] for m in older] == ["ann 1", "ben 1", "ann 2", "ben 2"]
        assert ben.put(chat, data={"title": "new plans"}).status_code == 200
        assert [c["title"] for c in ann.get(f"{base}/api/chats").json()["chats"]] == ["new plans"]
        mine = newest[-1]["id"]
        assert ann.delete(chat, params={"id": mine}).status_code == 403
        assert ben.delete(chat, params={"id": mine}).status_code == 200
        chat_id = chat.rsplit("/", 1)[1]
        assert ann.delete(f"{base}/api/chats", params={"chat_id": chat_id}).status_code == 200
        assert ann.get(chat).status_code == 403
        assert ben.get(f"{base}/api/chats/{chat_id}/members").json()["owner_id"] == ben_id
        assert ben.delete(f"{base}/api/user/{ben_id}").status_code == 200
        assert ben.get(f"{base}/api/chats").status_code == 401
        assert ann.get(chat).status_code == 404  # ben was the last member
        assert ann.get(f"{base}/api/logout").status_code == 200
        assert ann.get(f"{base}/api/chats").status_code == 401
    finally:
        assert server.stop() == 0


def test_restart_keeps_data_and_stops_its_redis(data_dir):
    server = RunningServer("--data-dir", data_dir)
    try:
        alice, _ = register(server.base, "alice")
        chat = server.base + alice.post(f"{server.base}/api/chats", data={"title": "kept"}).headers["Location"]
        alice.post(chat, data={"content": "still here"})
    finally:
        assert server.stop() == 0
    assert not os.path.exists(os.path.join(data_dir, "redis.sock"))  # its redis-server stopped too

    server = RunningServer("--data-dir", data_dir, port=server.port)
    try:
        assert [m["content"] for m in alice.get(chat).json()["messages"]] == ["still here"]
    finally:
        assert server.stop() == 0


def test_redis_url_uses_that_server_and_starts_none(redis_url, sync_redis, data_dir):
    server = RunningServer("--redis-url", redis_url, "--data-dir", data_dir)
    try:
        register(server.base, "carl")
        assert sync_redis.get("name:carl") is not None
        assert not os.path.exists(data_dir)
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_dead_embedded_redis_is_started_again_on_its_data(data_dir, workers):
    server = RunningServer("--data-dir", data_dir, "--workers", workers)
    try:
        alice, _ = register(server.base, "alice")
        chat = server.base + alice.post(f"{server.base}/api/chats", data={"title": "kept"}).headers["Location"]
        assert alice.post(chat, data={"content": "before the crash"}).status_code == 201
        (redis_pid,) = [pid for pid in server.children() if "redis-server" in _command_of(pid)]
        os.kill(redis_pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while True:  # 503 until it is back, then the data is all there
            answer = alice.get(chat)
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            assert answer.status_code == 503, answer.text
            time.sleep(0.2)
        assert [m["content"] for m in answer.json()["messages"]] == ["before the crash"]
        assert alice.post(chat, data={"content": "after"}).status_code == 201
    finally:
        assert server.stop() == 0


def _command_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().replace(b"\0", b" ").decode()
