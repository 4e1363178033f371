"""Shared helpers for the HTTP-level API tests: answer checks and common steps."""

import http.cookies
import re
import time
from email.utils import parsedate_to_datetime

from .apiclient import unique_name

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VALID_LOOKING_TOKEN = "A" * 43  # the shape of a real token, belonging to nobody


def assert_error(response, status: int) -> str:
    """The one error shape: the status, a JSON content type, {"error": "<text>"}."""
    assert response.code == status, response
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error"], body
    assert isinstance(body["error"], str) and body["error"], body
    return body["error"]


def assert_ok(response, status: int = 200) -> dict:
    """A JSON success answer carrying {"status": "ok"}; returns the body."""
    assert response.code == status, response
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert body.get("status") == "ok", body
    return body


def set_cookies(response) -> dict[str, http.cookies.Morsel]:
    """The cookies a response sets, by name."""
    found = {}
    for header in response.headers.get_list("Set-Cookie"):
        jar = http.cookies.SimpleCookie()
        jar.load(header)
        found.update(jar)
    return found


def is_expired(morsel: http.cookies.Morsel) -> bool:
    expires = morsel["expires"]
    return bool(expires) and parsedate_to_datetime(expires).timestamp() < time.time()


def assert_session_cookies(response, user_id: int) -> None:
    """user_id and a token, both HttpOnly, SameSite=Lax, Path=/, not expired."""
    cookies = set_cookies(response)
    assert cookies["user_id"].value == str(user_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", cookies["token"].value)
    for name in ("user_id", "token"):
        morsel = cookies[name]
        assert morsel["httponly"], name
        assert morsel["samesite"].lower() == "lax", name
        assert morsel["path"] == "/", name
        assert not is_expired(morsel), name


def assert_session_cookies_expired(response) -> None:
    cookies = set_cookies(response)
    for name in ("user_id", "token"):
        assert name in cookies, response.headers.get_list("Set-Cookie")
        assert is_expired(cookies[name]), cookies[name]
        assert cookies[name]["path"] == "/"


def client_with_cookies(new_client, cookies: dict[str, str]):
    """An anonymous client that sends exactly these cookies."""
    client = new_client()
    client.cookies = dict(cookies)
    return client


async def create_chat(client, title: str | None = None) -> int:
    response = await client.post("/api/chats", {"title": title or unique_name("chat")})
    return assert_ok(response, 201)["id"]


async def chat_with(owner, *members, title: str | None = None) -> int:
    """A new chat of `owner`, with `members` added in the given order."""
    chat_id = await create_chat(owner, title)
    for member in members:
        await add_member(owner, chat_id, member)
    return chat_id


async def add_member(client, chat_id: int, user) -> None:
    response = await client.post(f"/api/chats/{chat_id}/members", {"user_id": user.user_id})
    assert_ok(response, 201)


async def send(client, chat_id: int, content: str = "hello") -> int:
    response = await client.post(f"/api/chats/{chat_id}", {"content": content})
    return assert_ok(response, 201)["id"]


async def history(client, chat_id: int, **params) -> list[dict]:
    response = await client.get(f"/api/chats/{chat_id}", params=params or None)
    assert response.code == 200, response
    return response.json()["messages"]


async def history_ids(client, chat_id: int, **params) -> list[int]:
    return [m["id"] for m in await history(client, chat_id, **params)]


async def chats_of(client) -> list[dict]:
    response = await client.get("/api/chats")
    assert response.code == 200, response
    return response.json()["chats"]


async def chat_ids_of(client) -> list[int]:
    return [chat["id"] for chat in await chats_of(client)]


async def summary(client, chat_id: int) -> dict:
    """The chat's entry in the client's GET /api/chats."""
    matches = [chat for chat in await chats_of(client) if chat["id"] == chat_id]
    assert len(matches) == 1, matches
    return matches[0]


async def members_of(client, chat_id: int) -> tuple[int, list[int]]:
    """(owner id, member ids in join order) as a member sees them."""
    response = await client.get(f"/api/chats/{chat_id}/members")
    assert response.code == 200, response
    body = response.json()
    return body["owner_id"], [m["id"] for m in body["members"]]


async def chat_state(client, chat_id: int) -> dict:
    """Everything a member sees of a chat: summary, members and whole history."""
    members = await client.get(f"/api/chats/{chat_id}/members")
    assert members.code == 200, members
    return {
        "summary": await summary(client, chat_id),
        "members": members.json(),
        "history": await history(client, chat_id, limit=1000),
    }


async def user_record(client, user_id: int) -> dict:
    response = await client.get(f"/api/user/{user_id}")
    assert response.code == 200, response
    return response.json()["user"]
