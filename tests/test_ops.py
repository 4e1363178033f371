"""GET /healthz, GET /metrics and the server's log lines."""

import asyncio
import logging
import re
import socket
import sys
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from server.embedded_redis import EmbeddedRedis
from server.logs import LOG_FORMAT, OneLineFormatter

from .processes import RunningServer
from .wsclient import open_socket

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+\[\d+\]: ")


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample in a Prometheus text page (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


async def scrape(client) -> str:
    response = await client.get("/metrics")
    assert response.code == 200, response
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    return response.text


def requests_total(text: str, route: str, method: str, status: int) -> float:
    return sample(text, "chat_http_requests_total", route=route, method=method, status=str(status))


@pytest.mark.gen_test
async def test_requests_count_by_route_pattern_method_and_status(make_user, new_client):
    alice = await make_user()
    first = (await alice.post("/api/chats", {"title": "one"})).json()["id"]
    second = (await alice.post("/api/chats", {"title": "two"})).json()["id"]
    before = await scrape(alice)
    for chat_id in (first, second, first):
        assert (await alice.get(f"/api/chats/{chat_id}")).code == 200
    assert (await alice.get("/api/chats/999999")).code == 404
    assert (await alice.post(f"/api/chats/{first}", {"content": "hi"})).code == 201
    after = await scrape(alice)

    history = "/api/chats/{id}"
    assert requests_total(after, history, "GET", 200) - requests_total(before, history, "GET", 200) == 3
    assert requests_total(after, history, "GET", 404) - requests_total(before, history, "GET", 404) == 1
    assert requests_total(after, history, "POST", 201) - requests_total(before, history, "POST", 201) == 1
    assert requests_total(after, "/api/chats", "POST", 201) == 2
    # Raw paths never become labels.
    assert f"/api/chats/{first}" not in after and "999999" not in after


@pytest.mark.gen_test
async def test_unknown_paths_and_methods_share_one_label(new_client):
    client = new_client()
    for path in ("/nope", f"/nope/{uuid.uuid4().hex}", f"/{uuid.uuid4().hex}"):
        assert (await client.get(path)).code == 404
    assert (await client.request("BREW", "/api/chats")).code == 405
    text = await scrape(client)
    assert requests_total(text, "unmatched", "GET", 404) == 3
    assert requests_total(text, "/api/chats", "other", 405) == 1
    assert "nope" not in text and "BREW" not in text


@pytest.mark.gen_test
async def test_latency_histogram_per_route(make_user):
    alice = await make_user()
    for _ in range(3):
        assert (await alice.get("/api/chats")).code == 200
    text = await scrape(alice)
    name = "chat_http_request_duration_seconds"
    assert sample(text, name + "_count", route="/api/chats") == 3
    assert 0 < sample(text, name + "_sum", route="/api/chats") < 30
    assert sample(text, name + "_bucket", route="/api/chats", le="+Inf") == 3
    assert sample(text, name + "_count", route="/api/reg") == 1


@pytest.mark.gen_test
async def test_open_socket_gauge_follows_the_sockets(make_user, base_url):
    alice = await make_user()
    assert sample(await scrape(alice), "chat_websockets_open") == 0
    sockets = [await open_socket(base_url, alice.cookies) for _ in range(2)]
    assert sample(await scrape(alice), "chat_websockets_open") == 2
    for socket in sockets:
        socket.close()
    deadline = time.monotonic() + 5
    while sample(await scrape(alice), "chat_websockets_open") != 0:
        assert time.monotonic() < deadline, "the gauge did not go back to 0"
        await asyncio.sleep(0.05)


@pytest.mark.gen_test
async def test_healthz_answers_ok_without_a_session(new_client):
    response = await new_client().get("/healthz")
    assert response.code == 200, response
    assert response.json() == {"status": "ok", "redis": "up"}
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, which it may stop."""
    server = EmbeddedRedis(str(tmp_path / "redis"), "--appendonly", "no", "--save", "")
    url = server.start()
    yield server, url
    server.stop()


def test_healthz_and_metrics_when_redis_is_down(own_redis, tmp_path):
    redis_server, url = own_redis
    server = RunningServer("--redis-url", url, "--data-dir", str(tmp_path), "--rate-limits", "off",
                           "--redis-timeout-secs", "1")  # fmt: skip
    try:
        # A connection per request: the server closes one after an error
        # answered before the body was read (here the 503 of the session check).
        registered = requests.post(server.base + "/api/reg", data={"name": "u_" + uuid.uuid4().hex[:8],
                                   "password": "correct horse", "email": "a@example.org"})  # fmt: skip
        assert registered.status_code == 201
        assert requests.get(server.base + "/healthz", timeout=10).json() == {"status": "ok", "redis": "up"}
        redis_server.stop()

        started = time.monotonic()
        response = requests.get(server.base + "/healthz", timeout=10)
        assert time.monotonic() - started < 5  # the deadline is 1 s
        assert response.status_code == 503
        assert response.json() == {"error": "storage is unavailable, try again shortly", "redis": "down"}
        assert response.headers["Cache-Control"] == "no-store"
        assert requests.get(server.base + "/api/chats", cookies=registered.cookies, timeout=10).status_code == 503

        text = requests.get(server.base + "/metrics", timeout=10).text
        assert sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "chat_redis_errors_total") == 2  # fmt: skip
        assert requests_total(text, "/healthz", "GET", 503) == 1
        assert requests_total(text, "/api/chats", "GET", 503) == 1
        assert 'kind="unknown"' not in text
    finally:
        assert server.stop() == 0


def test_log_lines_are_single_lines_without_secrets(redis_url, sync_redis, tmp_path):
    server = RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off",
                           "--log-level", "debug")  # fmt: skip
    name = "u_" + uuid.uuid4().hex[:8]
    password, new_password = "first " + uuid.uuid4().hex, "second " + uuid.uuid4().hex
    idempotency_key = "key-" + uuid.uuid4().hex
    tokens = []
    try:
        session = requests.Session()
        base = server.base
        registered = session.post(base + "/api/reg",
                                  data={"name": name, "password": password, "email": "a@example.org"})  # fmt: skip
        assert registered.status_code == 201, registered.text
        user_id, tokens = registered.json()["id"], [session.cookies["token"]]
        assert requests.post(base + "/api/login", data={"name": name, "password": password + "x"}).status_code == 400
        assert session.post(base + "/api/login", data={"name": name, "password": password}).status_code == 200
        tokens.append(session.cookies["token"])
        chat_id = session.post(base + "/api/chats", data={"title": "logs"}).json()["id"]
        sent = session.post(base + f"/api/chats/{chat_id}", data={"content": "hello"},
                            headers={"Idempotency-Key": idempotency_key})  # fmt: skip
        assert sent.status_code == 201, sent.text
        changed = session.put(base + f"/api/user/{user_id}",
                              data={"current_password": password, "password": new_password})  # fmt: skip
        assert changed.status_code == 200, changed.text
        tokens.append(session.cookies["token"])
        # A password in the query string must not reach the log either.
        assert session.get(base + "/api/chats", params={"password": password}).status_code == 200
        # Nor a header line Tornado refuses as malformed (it quotes it).
        for header in (f"Cookie: user_id={user_id}; token={tokens[-1]}\x01", f"Idempotency-Key: {idempotency_key}\x01"):
            with socket.create_connection(("127.0.0.1", server.port)) as raw:
                raw.sendall(f"GET /api/chats HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode())
                assert raw.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        assert server.stop() == 0
    server.log.seek(0)
    output = server.log.read().decode()

    for secret in (password, new_password, idempotency_key, *tokens):
        assert secret not in output
    assert "token=" not in output
    lines = output.splitlines()
    assert lines
    assert [line for line in lines if not LOG_LINE.match(line)] == []
    assert re.search(r"INFO tornado\.access\[\d+\]: GET /api/chats 200 [\d.]+ms 127\.0\.0\.1$", output, re.M)
    assert re.search(r"WARNING tornado\.access\[\d+\]: POST /api/login 400 [\d.]+ms 127\.0\.0\.1$", output, re.M)
    assert f"PUT /api/user/{user_id} 200 " in output


def test_a_traceback_is_folded_into_one_line():
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        record = logging.LogRecord("chat", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    text = OneLineFormatter(LOG_FORMAT).format(record)
    assert "\n" not in text
    assert LOG_LINE.match(text)
    assert "failed here | Traceback (most recent call last): | " in text
    assert "ValueError: first line | second line" in text
