"""Redis outages, end to end: `run.py` against a redis-server that is killed
(connections refused) or frozen with SIGSTOP (connections accepted, never
answered). Every request then gets a JSON 503 within the deadline, nothing
hangs, and once Redis is back the same process serves normally again."""

import asyncio
import contextlib
import json
import signal
import time
from types import SimpleNamespace

import pytest
from tornado.httpclient import HTTPClientError

from server.embedded_redis import EmbeddedRedis

from .apiclient import ApiClient, unique_name
from .processes import RunningServer, free_port
from .wsclient import next_event, open_socket

TIMEOUT_SECS = 1.0  # --redis-timeout-secs for these servers
MARGIN_SECS = 3.0  # a loaded 2-core machine; a hang would take far longer
RECOVERY_SECS = 15.0
POOL_SIZE = 3  # smaller than the bursts below, so requests also wait for connections
UNAVAILABLE = {"error": "storage is unavailable, try again shortly"}


class RedisUnderTest:
    """A redis-server with the repository's redis.conf that a test can break."""

    def __init__(self, data_dir: str, tcp: bool):
        self.port = free_port() if tcp else None
        self._server = EmbeddedRedis(data_dir, *(("--port", str(self.port)) if tcp else ()))
        self.url = self._server.url if not tcp else f"redis://127.0.0.1:{self.port}/0"
        self._frozen = False

    def start(self) -> None:
        self._server.start()

    def break_it(self, outage: str) -> None:
        if outage == "killed":
            self._server.process.kill()
            self._server.process.wait()
        else:
            self._server.process.send_signal(signal.SIGSTOP)
            self._frozen = True

    def repair(self, outage: str) -> None:
        """A restart on the same port or socket and data, or SIGCONT."""
        if outage == "killed":
            self._server.start()
        else:
            self._server.process.send_signal(signal.SIGCONT)
            self._frozen = False

    def stop(self) -> None:
        if self._frozen:
            self._server.process.send_signal(signal.SIGCONT)
        self._server.stop()


@pytest.fixture(params=["killed", "frozen"])
def outage(request):
    return request.param


@pytest.fixture
def redis_server(tmp_path, outage):
    # The killed one on the embedded setup's unix socket, the frozen one over
    # TCP (where keepalive cannot help: the kernel still acknowledges).
    server = RedisUnderTest(str(tmp_path / "redis"), tcp=outage == "frozen")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def chat_server(redis_server, tmp_path):
    server = RunningServer(
        "--redis-url", redis_server.url, "--data-dir", str(tmp_path / "data"), "--rate-limits", "off",
        "--redis-timeout-secs", str(TIMEOUT_SECS), "--redis-max-connections", str(POOL_SIZE),
    )  # fmt: skip
    yield server
    assert server.stop() == 0


async def timed(label: str, request) -> tuple[str, int, str, float]:
    """(label, status, body, seconds) of one request; a refused upgrade is its HTTP answer."""
    started = time.monotonic()
    try:
        response = await request
        status, body = response.code, response.text
    except HTTPClientError as exc:
        status, body = exc.code, (exc.response.body or b"").decode() if exc.response else ""
    return label, status, body, time.monotonic() - started


async def upgrade(client: ApiClient) -> SimpleNamespace:
    """A WebSocket upgrade: raises the HTTP answer when refused; else 101 and the first event."""
    socket = await open_socket(client.base_url, client.cookies, ready=False)
    first = await socket.read_message()
    socket.close()
    return SimpleNamespace(code=101, text=json.dumps(first))


async def live_delivery_within(socket, sender: ApiClient, chat: str, seconds: float) -> str:
    """Sends until one message reaches the socket live; returns its content. A
    socket opened while the process's pub/sub connection was still down may
    first get `resync`."""
    started = time.monotonic()
    while True:
        assert time.monotonic() - started < seconds, "no live delivery after the recovery"
        content = f"after {time.monotonic()}"
        assert (await sender.post(chat, {"content": content})).code == 201
        with contextlib.suppress(asyncio.TimeoutError):
            assert await message_on(socket, timeout=1.0) == content
            return content


async def message_on(socket, timeout: float) -> str:
    """The content of the next message event, past `ready` and `resync`."""
    while (event := await next_event(socket, timeout=timeout))["type"] != "message":
        assert event["type"] in ("ready", "resync"), event
    return event["message"]["content"]


def every_kind_of_request(http_client, alice: ApiClient, chat: str, tag: str) -> list:
    return [
        timed("login", ApiClient(http_client, alice.base_url).post(
            "/api/login", {"name": alice.name, "password": "correct horse"})),
        timed("chat list", alice.get("/api/chats")),
        timed("history", alice.get(chat)),
        timed("send", alice.post(chat, {"content": f"during the outage {tag}"})),
    ]  # fmt: skip


async def back_within(client: ApiClient, seconds: float) -> float:
    """Seconds until the service answers a chat list with 200 again."""
    started = time.monotonic()
    while (await client.get("/api/chats")).code != 200:
        assert time.monotonic() - started < seconds, "the service did not recover by itself"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def two_users_in_a_chat(http_client, base: str) -> tuple[ApiClient, ApiClient, str]:
    """Alice and bob, members of one chat with one message; alice's session is cached, as in real use."""
    alice, bob = ApiClient(http_client, base), ApiClient(http_client, base)
    assert (await alice.register(unique_name("alice"))).code == 201
    assert (await bob.register(unique_name("bob"))).code == 201
    chat = f"/api/chats/{(await alice.post('/api/chats', {'title': 'outage'})).json()['id']}"
    assert (await alice.post(chat + "/members", {"user_id": bob.user_id})).code == 201
    assert (await alice.post(chat, {"content": "before"})).code == 201
    assert (await alice.get("/api/chats")).code == 200
    return alice, bob, chat


def assert_prompt_503s(answers: list, outage: str, cached: dict | None = None) -> None:
    """Each answer a prompt 503, or (for a label in `cached`) exactly that body:
    a process's read cache answers while its pub/sub connection stands (a
    frozen Redis changes nothing, and a lost connection empties the cache)."""
    for label, status, body, seconds in answers:
        if status == 200 and cached and label in cached:
            assert json.loads(body) == cached[label], (outage, label)
        else:
            assert (status, json.loads(body or "null")) == (503, UNAVAILABLE), (outage, label, status, body)
        assert seconds < TIMEOUT_SECS + MARGIN_SECS, (outage, label, seconds)


@pytest.mark.gen_test(timeout=120)
async def test_an_outage_is_a_prompt_json_503_and_the_service_recovers(outage, redis_server, chat_server, http_client):
    alice, bob, chat = await two_users_in_a_chat(http_client, chat_server.base)
    bobs_socket = await open_socket(chat_server.base, bob.cookies)  # open across the outage
    cached = {"chat list": (await alice.get("/api/chats")).json(), "history": (await alice.get(chat)).json()}
    redis_server.break_it(outage)
    for round_ in range(2):  # twice: the first round's stuck connections must not slow the second
        requests = [r for tag in "ab" for r in every_kind_of_request(http_client, alice, chat, f"{round_}{tag}")]
        assert_prompt_503s(await asyncio.gather(*requests), outage, cached)

    redis_server.repair(outage)
    await back_within(alice, RECOVERY_SECS)
    socket = await open_socket(chat_server.base, alice.cookies, ready=False)  # opened after recovery
    content = await live_delivery_within(socket, bob, chat, RECOVERY_SECS)
    socket.close()
    while await message_on(bobs_socket, timeout=RECOVERY_SECS) != content:
        pass  # (earlier attempts may reach bob's socket, which never closed)
    bobs_socket.close()
    answers = await asyncio.gather(*(alice.get(chat, {"limit": 1000}) for _ in range(3 * POOL_SIZE)))
    assert {answer.code for answer in answers} == {200}  # the pool lost no connection
    contents = [message["content"] for message in answers[0].json()["messages"]]
    assert contents[0] == "before" and contents[-1].startswith("after")
    # A send cut off by the deadline may still have reached Redis (a frozen
    # one runs it when it wakes up): never twice, though.
    assert all(contents.count(content) == 1 for content in contents)
    login = await ApiClient(http_client, chat_server.base).post(
        "/api/login", {"name": alice.name, "password": "correct horse"}
    )
    assert login.code == 200


@pytest.mark.parametrize("outage", ["killed", "frozen"])
@pytest.mark.gen_test(timeout=60)
async def test_a_websocket_upgrade_in_an_outage_is_a_prompt_json_503(outage, redis_server, chat_server, http_client):
    alice, _, _ = await two_users_in_a_chat(http_client, chat_server.base)
    redis_server.break_it(outage)
    assert_prompt_503s(await asyncio.gather(*(timed("websocket", upgrade(alice)) for _ in range(2))), outage)
