"""Bad and unusual input: routes, methods, check order, ids, field rules,
encodings and JSON bodies. Each is a JSON error, never a 500."""

import json

import pytest

from .api_helpers import (
    assert_error,
    assert_ok,
    chat_with,
    chats_of,
    create_chat,
    history,
    members_of,
    send,
    user_record,
)
from .apiclient import unique_name

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
BODY_LIMIT = 64 * 1024


# Routes and methods


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/web", "/api", "/api/nope", "/api/users/1", "/api/chats/1/messages",
                                  "/api/chats/1/members/2", "/api/user/1/extra", "/api/chats//members"])
@pytest.mark.parametrize("logged_in", [False, True])
@pytest.mark.gen_test
async def test_unknown_route_is_json_404(make_user, new_client, method, path, logged_in):
    client = await make_user() if logged_in else new_client()
    assert_error(await client.request(method, path), 404)


ALLOWED = {
    "/api/reg": {"POST"},
    "/api/login": {"POST"},
    "/api/logout": {"GET", "POST"},
    "/api/chats": {"GET", "POST", "DELETE"},
    "/api/chats/1": {"GET", "POST", "PUT", "DELETE"},
    "/api/chats/1/members": {"GET", "POST", "DELETE"},
    "/api/user": {"GET", "POST", "PUT", "DELETE"},
    "/api/user/1": {"GET", "POST", "PUT", "DELETE"},
}
WRONG_METHODS = [
    (path, method)
    for path, allowed in ALLOWED.items()
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
    if method not in allowed
]


@pytest.mark.parametrize("path,method", WRONG_METHODS)
@pytest.mark.parametrize("logged_in", [False, True])
@pytest.mark.gen_test
async def test_wrong_method_is_json_405_with_allow(make_user, new_client, path, method, logged_in):
    client = await make_user() if logged_in else new_client()
    response = await client.request(method, path)
    assert_error(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed == ALLOWED[path]


# Order of checks: 405 -> 413 -> 401 -> 400 -> 404 -> 403 -> 409


@pytest.mark.gen_test
async def test_check_order_before_the_session(new_client):
    anonymous = new_client()
    oversized = "title=" + "a" * BODY_LIMIT
    assert_error(await anonymous.request("PATCH", "/api/chats", body=oversized, headers=FORM), 405)
    assert_error(await anonymous.post("/api/chats", body=oversized, headers=FORM), 413)
    assert_error(await anonymous.post("/api/chats", {}), 401)
    assert_error(await anonymous.get("/api/chats/abc", params={"limit": "0"}), 401)
    assert_error(await anonymous.put("/api/user/abc", {"email": "broken"}), 401)


@pytest.mark.parametrize("path", ["/api/chats/%ff", "/api/chats/%ff/members", "/api/user/%C3%28"])
@pytest.mark.gen_test
async def test_undecodable_path_without_session_is_401(new_client, path):
    # The same request with a session is a 400 (test_invalid_utf8_is_400_not_500).
    assert_error(await new_client().get(path), 401)


@pytest.mark.gen_test
async def test_check_order_after_the_session(make_user):
    alice, bob, stranger = await make_user(), await make_user(), await make_user()
    chat_id = await chat_with(alice, bob)
    missing = chat_id + 1000
    # 400 before 404
    assert_error(await stranger.get(f"/api/chats/{missing}", params={"limit": "0"}), 400)
    assert_error(await stranger.post(f"/api/chats/{missing}", {"content": "  "}), 400)
    assert_error(await stranger.put(f"/api/user/{bob.user_id + 1000}", {"email": "broken"}), 400)
    assert_error(await stranger.post(f"/api/chats/{missing}/members", {}), 400)
    # 404 before 403
    assert_error(await stranger.post(f"/api/chats/{missing}/members", {"user_id": bob.user_id}), 404)
    # 403 before 409: bob is already a member, but the stranger may not ask.
    assert_error(await stranger.post(f"/api/chats/{chat_id}/members", {"user_id": bob.user_id}), 403)
    # 400 before 403
    assert_error(await stranger.put(f"/api/user/{bob.user_id}", {"email": "broken"}), 400)


# Ids in the path and the query


BAD_IDS = ["abc", "1.5", "-1", "0", "1e3", "0x1", "999999999999999", "%20", "1%2C2"]
ID_ENDPOINTS = [
    ("GET", "/api/chats/{id}", None),
    ("POST", "/api/chats/{id}", {"content": "hi"}),
    ("PUT", "/api/chats/{id}", {"title": "t"}),
    ("DELETE", "/api/chats/{id}", None),
    ("GET", "/api/chats/{id}/members", None),
    ("POST", "/api/chats/{id}/members", {"user_id": "1"}),
    ("DELETE", "/api/chats/{id}/members", None),
    ("GET", "/api/user/{id}", None),
    ("PUT", "/api/user/{id}", {"email": "a@b.org"}),
    ("DELETE", "/api/user/{id}", None),
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize("method,path,form", ID_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ID_ENDPOINTS])
@pytest.mark.gen_test
async def test_non_numeric_id_in_path_is_400(make_user, method, path, form, bad_id):
    alice = await make_user()
    chat_id = await create_chat(alice)
    params = {"id": "1", "user_id": str(alice.user_id)} if method == "DELETE" else None
    response = await alice.request(method, path.format(id=bad_id), data=form, params=params)
    assert_error(response, 400)
    assert (await user_record(alice, alice.user_id))["name"] == alice.name
    assert [c["id"] for c in await chats_of(alice)] == [chat_id]


# Field rules at registration (the same rules guard PUT /api/user)


def _reg(**changes):
    name = unique_name()
    form = {"name": name, "password": "correct horse", "email": f"{name}@example.org"}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


BAD_REGISTRATIONS = {
    "no-name": _reg(name=None), "no-password": _reg(password=None), "no-email": _reg(email=None),
    "empty-name": _reg(name=""), "empty-password": _reg(password=""), "empty-email": _reg(email=""),
    "name-33": _reg(name="n" * 33), "name-space": _reg(name="two words"), "name-unicode": _reg(name="ünïcode"),
    "name-at": _reg(name="a@b"), "name-slash": _reg(name="a/b"), "name-newline": _reg(name="ab\n"),
    "password-7": _reg(password="1234567"), "password-73": _reg(password="p" * 73),
    "password-73-bytes": _reg(password="é" * 36 + "x"), "password-6-bytes-3-chars": _reg(password="ééé"),
    "email-no-at": _reg(email="example.org"), "email-two-at": _reg(email="a@b@example.org"),
    "email-space": _reg(email="a b@example.org"), "email-leading-space": _reg(email=" a@example.org"),
    "email-only-at": _reg(email="@"), "email-no-local": _reg(email="@example.org"),
    "email-255": _reg(email="a@" + "e" * 253),
}


@pytest.mark.parametrize("form", BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys())
@pytest.mark.gen_test
async def test_bad_registration_is_400_and_creates_nobody(new_client, sync_redis, form):
    client = new_client()
    assert_error(await client.post("/api/reg", form), 400)
    assert client.cookies == {}
    assert sync_redis.keys("user:*") == [] and sync_redis.keys("name:*") == []


GOOD_REGISTRATIONS = {
    "name-32": _reg(name=unique_name("n").ljust(32, "x")), "name-1": _reg(name=unique_name()[-1:]),
    "name-punct": _reg(name="A.b-c_" + unique_name()), "password-8": _reg(password="12345678"),
    "password-8-bytes-4-chars": _reg(password="éééé"), "password-72-bytes": _reg(password="é" * 36),
    "password-spaces": _reg(password="   spaces   "), "email-254": _reg(email="a@" + "e" * 252),
    "email-unicode": _reg(email="ünï@exämple.org"), "email-plus": _reg(email="a+tag@sub.example.org"),
}


@pytest.mark.parametrize("form", GOOD_REGISTRATIONS.values(), ids=GOOD_REGISTRATIONS.keys())
@pytest.mark.gen_test
async def test_boundary_registration_is_accepted_and_stored_as_sent(new_client, form):
    client = new_client()
    response = await client.post("/api/reg", form)
    user_id = assert_ok(response, 201)["id"]
    assert await user_record(client, user_id) == {"id": user_id, "name": form["name"], "email": form["email"],
                                                  "allow_adds": "anyone"}  # fmt: skip
    login = await new_client().post("/api/login", {"name": form["name"], "password": form["password"]})
    assert login.code == 200, login


# Encodings


@pytest.mark.gen_test
async def test_invalid_utf8_is_400_not_500(make_user, new_client):
    alice = await make_user()
    chat_id = await create_chat(alice, "kept")
    await send(alice, chat_id, "kept")
    attempts = [
        alice.post(f"/api/chats/{chat_id}", body="content=%ff", headers=FORM),
        alice.post(f"/api/chats/{chat_id}", body="content=ok%ED%A0%80", headers=FORM),  # a surrogate
        alice.post("/api/chats", body="title=%C3%28", headers=FORM),
        alice.put(f"/api/chats/{chat_id}", body="title=%fe%ff", headers=FORM),
        alice.put(f"/api/user/{alice.user_id}", body="email=a%ff@b.org", headers=FORM),
        alice.get(f"/api/chats/{chat_id}?limit=%ff"),
        alice.get(f"/api/user/1?name=%ff"),
        alice.delete(f"/api/chats?chat_id=%ff"),
        alice.get("/api/chats/%ff"),
        alice.post(f"/api/chats/{chat_id}", body=b'{"content": "\xff"}', headers=JSON),
        new_client().post("/api/reg", body="name=%ff&password=correct+horse&email=a%40b.org", headers=FORM),
        new_client().post("/api/login", body=f"name={alice.name}&password=%ff%ff%ff%ff%ff%ff%ff%ff", headers=FORM),
    ]
    for attempt in attempts:
        assert_error(await attempt, 400)
    assert [m["content"] for m in await history(alice, chat_id)] == ["kept"]
    assert [c["title"] for c in await chats_of(alice)] == ["kept"]
    assert (await user_record(alice, alice.user_id))["email"] == f"{alice.name}@example.org"


@pytest.mark.gen_test
async def test_unicode_round_trips_everywhere(make_user):
    alice, bob = await make_user(), await make_user()
    chat_id = await chat_with(alice, bob, title="Über 🚀 Чат 日本")
    await send(alice, chat_id, "naïve — 日本語 🍣\u200d👩‍💻 עברית")
    assert_ok(await alice.put(f"/api/user/{alice.user_id}", {"email": "ünï@exämple.org"}))

    assert (await chats_of(bob))[0]["title"] == "Über 🚀 Чат 日本"
    assert (await history(bob, chat_id))[0]["content"] == "naïve — 日本語 🍣\u200d👩‍💻 עברית"
    assert (await user_record(alice, alice.user_id))["email"] == "ünï@exämple.org"


# JSON bodies


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
@pytest.mark.gen_test
async def test_json_bodies_work_like_forms(make_user, new_client, content_type):
    headers = {"Content-Type": content_type}

    async def call(client, method, path, payload):
        return await client.request(method, path, body=json.dumps(payload), headers=headers)

    name = unique_name()
    carol = new_client()
    registered = await call(carol, "POST", "/api/reg", {"name": name, "password": "pässwörd!", "email": "c@x.org"})
    carol_id = assert_ok(registered, 201)["id"]
    assert (await call(new_client(), "POST", "/api/login", {"name": name, "password": "pässwörd!"})).code == 200

    alice, bob = await make_user(), await make_user()
    chat_id = assert_ok(await call(alice, "POST", "/api/chats", {"title": "json chat"}), 201)["id"]
    assert_ok(await call(alice, "POST", f"/api/chats/{chat_id}/members", {"user_id": bob.user_id}), 201)
    assert_ok(await call(alice, "POST", f"/api/chats/{chat_id}/members", {"user_id": str(carol_id)}), 201)
    assert_ok(await call(alice, "DELETE", f"/api/chats/{chat_id}/members", {"user_id": carol_id}))
    sent = assert_ok(await call(bob, "POST", f"/api/chats/{chat_id}", {"content": " line\n🎉 "}), 201)["id"]
    await send(bob, chat_id, "second")
    assert_ok(await call(alice, "PUT", f"/api/chats/{chat_id}", {"title": " renamed "}))
    assert_ok(await call(bob, "DELETE", f"/api/chats/{chat_id}", {"id": sent + 1}))
    assert_ok(await call(bob, "PUT", f"/api/user/{bob.user_id}", {"email": "bob@json.org"}))

    assert [m["content"] for m in await history(alice, chat_id)] == [" line\n🎉 "]
    assert (await chats_of(bob))[0]["title"] == "renamed"
    assert await members_of(bob, chat_id) == (alice.user_id, [alice.user_id, bob.user_id])
    assert (await user_record(bob, bob.user_id))["email"] == "bob@json.org"
    assert_ok(await call(bob, "DELETE", "/api/chats", {"chat_id": chat_id}))
    assert await chats_of(bob) == []


BAD_JSON = {
    "not-json": b"content=hello", "truncated": b'{"content": "hi"', "array": b'["hi"]', "string": b'"hi"',
    "null": b"null", "number": b"42", "list-value": b'{"content": [1]}', "null-value": b'{"content": null}',
    "bool-value": b'{"content": true}', "float-value": b'{"content": 1.5}', "object-value": b'{"content": {"a": 1}}',
    "lone-surrogate": b'{"content": "\\ud800"}', "nan": b'{"content": NaN}', "empty-object": b"{}",
}


@pytest.mark.parametrize("body", BAD_JSON.values(), ids=BAD_JSON.keys())
@pytest.mark.gen_test
async def test_bad_json_body_is_400_and_stores_nothing(make_user, body):
    alice = await make_user()
    chat_id = await create_chat(alice)
    assert_error(await alice.post(f"/api/chats/{chat_id}", body=body, headers=JSON), 400)
    assert await history(alice, chat_id) == []


@pytest.mark.parametrize("payload", [{"title": ["x"]}, {"title": False}, {"title": None}, {"title": 5.5}])
@pytest.mark.gen_test
async def test_non_string_title_is_400(make_user, payload):
    alice = await make_user()
    assert_error(await alice.post("/api/chats", body=json.dumps(payload), headers=JSON), 400)
    assert await chats_of(alice) == []


@pytest.mark.gen_test
async def test_a_whole_json_float_is_an_integer(make_user):
    # JSON Schema (and many JSON encoders) do not tell 1.0 from 1.
    alice = await make_user()
    chat_id = await create_chat(alice)
    body = json.dumps({"chat_id": float(chat_id)})
    assert_ok(await alice.delete("/api/chats", body=body, headers=JSON))
    assert await chats_of(alice) == []
