"""Writes a browser sends from another site are refused (403); clients that
send neither Origin nor Sec-Fetch-Site are not browsers, and pass."""

import dataclasses
import json

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from .api_helpers import assert_error, assert_ok, chat_ids_of, chat_with

EVIL = {"Origin": "https://evil.example"}


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, allowed_origins="https://app.example.org, https://other.example.org:8443")


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "headers",
    [
        EVIL,
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "SAME"},  # either header is enough
        {"Origin": "https://app.example.org.evil.example"},
        {"Origin": "http://localhost:1"},  # the service's host on another port
        {"Origin": "not a url"},
    ],
)
async def test_cross_site_writes_are_refused_and_change_nothing(make_user, base_url, headers):
    alice = await make_user()
    headers = {k: _resolve(v, base_url) for k, v in headers.items()}
    response = await alice.post("/api/chats", {"title": "forged"}, headers=headers)
    assert "cross-site" in assert_error(response, 403)
    assert await chat_ids_of(alice) == []


def _resolve(value: str, base_url: str) -> str:
    if value == "SAME":
        return base_url
    if value == "SAME-OVER-TLS":
        return base_url.replace("http://", "https://")
    return value


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "SAME"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        {"Origin": "https://app.example.org"},  # allowed by the setting
        {"Origin": "https://other.example.org:8443"},
        # Behind a TLS proxy the origin is https while the service sees http.
        {"Origin": "SAME-OVER-TLS"},
    ],
)
async def test_same_site_and_non_browser_writes_pass(make_user, base_url, headers):
    alice = await make_user()
    headers = {k: _resolve(v, base_url) for k, v in headers.items()}
    assert_ok(await alice.post("/api/chats", {"title": "fine"}, headers=headers), 201)


@pytest.mark.gen_test
async def test_every_write_is_covered_and_reads_are_not(make_user, new_client):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    writes = [
        ("POST", f"/api/chats/{chat_id}", {"content": "x"}),
        ("PUT", f"/api/chats/{chat_id}", {"title": "x"}),
        ("DELETE", f"/api/chats/{chat_id}", {"id": "1"}),
        ("DELETE", "/api/chats", {"chat_id": str(chat_id)}),
        ("POST", f"/api/chats/{chat_id}/members", {"user_id": "99"}),
        ("DELETE", f"/api/chats/{chat_id}/members", {"user_id": str(bob.user_id)}),
        ("PUT", f"/api/user/{alice.user_id}", {"email": "x@y.org"}),
        ("DELETE", f"/api/user/{alice.user_id}", None),
        ("GET", "/api/logout", None),
        ("POST", "/api/logout", None),
    ]
    for method, path, data in writes:
        params = data if method in ("GET", "DELETE") else None
        body = None if method in ("GET", "DELETE") else data
        response = await alice.request(method, path, data=body, params=params, headers=EVIL)
        assert response.code == 403, (method, path, response)
    # Nothing happened: still logged in, still in the chat with bob, no messages.
    assert await chat_ids_of(alice) == [chat_id]
    assert (await alice.get(f"/api/chats/{chat_id}", headers=EVIL)).json()["messages"] == []
    # Login and registration from another site too (login CSRF).
    assert_error(await new_client().post("/api/login", {"name": alice.name, "password": "correct horse"},
                                         headers=EVIL), 403)  # fmt: skip
    assert_error(await new_client().post("/api/reg", {"name": "newbie", "password": "correct horse",
                                                      "email": "n@x.org"}, headers=EVIL), 403)  # fmt: skip


@pytest.mark.gen_test
async def test_a_cross_site_websocket_is_refused_with_json(make_user, base_url):
    alice = await make_user()
    url = base_url.replace("http://", "ws://") + "/api/ws"
    cookie = "; ".join(f"{k}={v}" for k, v in alice.cookies.items())
    for headers in (EVIL, {"Sec-Fetch-Site": "cross-site"}):
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie, **headers}))
        assert refused.value.code == 403
        assert "error" in json.loads(refused.value.response.body)
    connection = await websocket_connect(
        HTTPRequest(url, headers={"Cookie": cookie, "Origin": "https://app.example.org"})
    )
    connection.close()
