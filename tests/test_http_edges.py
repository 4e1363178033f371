"""The HTTP edges every endpoint shares: body size, method, check order, error shape."""

import asyncio
import json

import pytest
from tornado.httpclient import HTTPRequest
from tornado.testing import bind_unused_port

from server.app import make_app, make_http_server, make_redis, make_storage
from server.hub import Hub

from .redis_clients import nodes_of

LIMIT = 64 * 1024


def assert_json_error(response, status):
    assert response.code == status, response
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"], body


@pytest.mark.gen_test
async def test_body_over_limit_is_json_413_even_before_session(new_client):
    response = await new_client().post("/api/chats", body="title=" + "a" * LIMIT)
    assert_json_error(response, 413)


@pytest.mark.gen_test
async def test_body_at_limit_is_read(make_user):
    alice = await make_user()
    body = "title=ok&pad=" + "a" * (LIMIT - len("title=ok&pad="))
    response = await alice.post("/api/chats", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.code == 201, response


@pytest.mark.gen_test
async def test_declared_body_far_over_hard_cap_is_json_413(new_client):
    # Refused on the declared length alone: nothing of the body is read.
    client = new_client()
    response = await client.post("/api/reg", body="x" * (LIMIT * 40))
    assert_json_error(response, 413)


async def post_chunked(http_client, url: str, chunks: list[bytes]):
    """POSTs a body with no Content-Length, sent chunk by chunk."""

    async def produce(write):
        for chunk in chunks:
            await write(chunk)

    request = HTTPRequest(
        url, method="POST", body_producer=produce, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    return await http_client.fetch(request, raise_error=False)


@pytest.mark.gen_test
async def test_chunked_body_over_limit_is_json_413(http_client, base_url):
    response = await post_chunked(http_client, base_url + "/api/reg", [b"a" * 8192] * 20)
    assert response.code == 413
    assert json.loads(response.body) == {"error": "request body too large"}


@pytest.mark.gen_test
async def test_chunked_body_within_limit_works(http_client, base_url, sync_redis):
    chunks = [b"name=chunky&password=long+enough", b"&email=c%40example.org"]
    response = await post_chunked(http_client, base_url + "/api/reg", chunks)
    assert response.code == 201
    assert sync_redis.get("name:chunky") is not None


@pytest.mark.gen_test
async def test_wrong_method_is_405_before_session_and_size(new_client):
    response = await new_client().request("PATCH", "/api/chats", body="a" * (LIMIT + 1))
    assert_json_error(response, 405)
    assert response.headers["Allow"] == "GET, POST, DELETE"


@pytest.mark.gen_test
async def test_size_is_checked_before_session(new_client):
    response = await new_client().post("/api/chats/1", body="content=" + "a" * LIMIT)
    assert_json_error(response, 413)


@pytest.mark.gen_test
async def test_session_is_checked_before_input(new_client):
    response = await new_client().post("/api/chats", {"title": ""})
    assert_json_error(response, 401)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/web", "/web/", "/api", "/api/chat", "/api/chats/1/members/2", "/index.html"])
async def test_unknown_routes_are_json_404(new_client, path):
    assert_json_error(await new_client().get(path), 404)


@pytest.mark.gen_test
async def test_trailing_slash_is_served(make_user):
    alice = await make_user()
    assert (await alice.get("/api/chats/")).code == 200


@pytest.mark.gen_test
async def test_malformed_content_length_is_400(http_client, base_url):
    # Tornado refuses it at the protocol level; the point is: no 500, no hang.
    request = HTTPRequest(base_url + "/api/reg", method="POST", body="a=b", headers={"Content-Length": "3"})
    response = await http_client.fetch(request, raise_error=False)
    assert response.code == 400


@pytest.mark.gen_test
async def test_invalid_utf8_in_form_is_json_400(new_client):
    response = await new_client().post("/api/reg", body="name=%ff&password=long+enough&email=a%40b.c")
    assert_json_error(response, 400)
    assert response.json()["error"] == "name is not valid UTF-8"


@pytest.mark.gen_test
async def test_answers_are_not_cached_and_have_no_etag(make_user):
    alice = await make_user()
    response = await alice.get("/api/chats")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Etag" not in response.headers


@pytest.mark.gen_test
async def test_storage_outage_is_json_503(tmp_path, settings, http_client):
    # A real app whose Redis is not there: the answer is a bounded, clean 503.
    client = make_redis(f"unix://{tmp_path}/no-redis.sock", settings)
    storage = make_storage(client, settings)
    server = make_http_server(make_app(settings, storage, Hub(storage)), settings)
    sock, port = bind_unused_port()
    server.add_socket(sock)
    try:
        response = await http_client.fetch(
            f"http://127.0.0.1:{port}/api/chats",
            headers={"Cookie": "user_id=1; token=" + "a" * 43},
            raise_error=False,
        )
    finally:
        server.stop()
        await client.aclose()
    assert response.code == 503
    error = json.loads(response.body)["error"]
    assert "redis" not in error.lower() and "unavailable" in error


@pytest.mark.gen_test
async def test_chunked_body_over_limit_is_413_on_a_get_too(make_user, http_port):
    # Written by hand: HTTP clients do not send chunked bodies with GET.
    alice = await make_user()
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    cookie = f"user_id={alice.cookies['user_id']}; token={alice.cookies['token']}"
    writer.write(f"GET /api/chats HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"2000\r\n" + b"a" * 0x2000 + b"\r\n"
    try:
        for _ in range(20):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass  # the server may close as soon as it has answered
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body) == {"error": "request body too large"}
    assert (await alice.get("/api/chats")).code == 200  # the server carries on


@pytest.mark.gen_test
async def test_redis_out_of_memory_is_json_503_and_loses_nothing(make_user, sync_redis):
    alice = await make_user()
    chat = (await alice.post("/api/chats", {"title": "full"})).headers["Location"]
    for node in nodes_of(sync_redis):  # on a cluster each master has its own memory, and the chat is on one
        node.config_set("maxmemory", int(node.info("memory")["used_memory"]) + 256 * 1024)
    try:
        codes = []
        for _ in range(200):
            response = await alice.post(chat, {"content": "x" * 3000})
            codes.append(response.code)
            if response.code != 201:
                break
    finally:
        sync_redis.config_set("maxmemory", 0)
    assert codes[-1] == 503, codes
    assert response.json() == {"error": "storage is full, try again later"}
    stored = (await alice.get(chat, {"limit": 1000})).json()["messages"]
    assert len(stored) == codes.count(201)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "body, error",
    [
        ('{"\\ud800": 1.5}', "a field name is not valid unicode"),
        ('{"title": "\\ud800"}', "title is not valid unicode"),
        ("[" * 50_000, "the request body is not valid JSON"),
    ],
)
async def test_json_bodies_utf8_cannot_carry_are_json_400(make_user, body, error):
    alice = await make_user()
    response = await alice.post("/api/chats", body=body, headers={"Content-Type": "application/json"})
    assert_json_error(response, 400)
    assert response.json()["error"] == error


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "first",
    [
        b"GET /api/chats HTTP/1.1\r\nHost: x\r\n\r\n",  # 401
        b"POST /api/chats HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\ntitle=x",  # 401 with a body
        b"POST /api/chats HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nContent-Length: 0\r\n\r\n",  # 403
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",  # 404
    ],
)
async def test_a_refusal_keeps_the_connection_open(make_user, http_port, first):
    # Keep-alive clients reuse the connection: a refused request must not
    # leave it half-read and closed under the next one.
    alice = await make_user()
    cookie = f"user_id={alice.cookies['user_id']}; token={alice.cookies['token']}"
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(first)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.split(b" ")[1] in (b"401", b"403", b"404") and b"Connection: close" not in head
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    writer.write(f"GET /api/chats HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert second.startswith(b"HTTP/1.1 200 ")
