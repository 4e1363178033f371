"""The API contract: docs/openapi.yaml is valid, served, matches the routes,
and the check every API test runs (tests/contract.py) rejects what it must."""

import copy
import json

import pytest
import schemathesis
import yaml
from tornado.web import RequestHandler

from . import apiclient
from .api_helpers import assert_error, create_chat
from .contract import SPEC_PATH, Contract, ContractViolation, check_response, load_document

JSON = {"Content-Type": "application/json; charset=UTF-8"}
CHAT = {
    "id": 1, "title": "t", "owner_id": 1, "created_at": "2026-11-23T19:02:54.911Z",
    "last_message": None, "last_message_id": None, "last_message_time": None, "sender_id": None,
    "last_message_edited_at": None, "seq": 0, "epoch": "0f3a9c2b1d4e5f60", "last_read_id": 0, "unread_count": 0,
}  # fmt: skip


@pytest.mark.gen_test
async def test_openapi_json_serves_the_yaml_document_without_a_session(new_client):
    anonymous = new_client()
    for path in ("/api/openapi.json", "/api/openapi.json/"):
        response = await anonymous.get(path)
        assert response.code == 200, response
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json() == yaml.safe_load(SPEC_PATH.read_text())


@pytest.mark.gen_test
async def test_openapi_json_is_read_only(new_client):
    response = await new_client().post("/api/openapi.json", {})
    assert_error(response, 405)
    assert response.headers["Allow"] == "GET"


def test_the_document_is_valid_openapi_3_1():
    document = load_document()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()
    # The same check refuses a broken document, so passing it means something.
    broken = copy.deepcopy(document)
    broken["paths"]["/api/chats"]["get"]["responses"]["200"] = "fine"
    with pytest.raises(Exception, match="not of type"):
        schemathesis.openapi.from_dict(broken).validate()


def _sample_path(pattern: str) -> str:
    return pattern.rstrip("$").replace("([^/]+)", "1").replace("/?", "").replace("\\.", ".")


def _served_methods(handler_class) -> set[str]:
    return {
        method
        for method in handler_class.SUPPORTED_METHODS
        if getattr(handler_class, method.lower(), None) is not getattr(RequestHandler, method.lower(), None)
    }


def test_every_route_is_documented_and_every_operation_is_served(app):
    contract = Contract(load_document())
    rules = [(rule.matcher.regex, rule.target) for rule in app.wildcard_router.rules]
    for regex, handler_class in rules:
        for method in _served_methods(handler_class):
            sample = _sample_path(regex.pattern)
            assert contract.find(method, sample), f"{method} {sample} is served but not in docs/openapi.yaml"
    for template, item in load_document()["paths"].items():
        sample = template.replace("{chat_id}", "1").replace("{user_id}", "1")
        handlers = [handler for regex, handler in rules if regex.fullmatch(sample)]
        assert handlers, f"{template} is documented but no route serves it"
        for method in set(item) & {"get", "put", "post", "delete", "patch"}:
            assert method.upper() in _served_methods(handlers[0]), f"{method.upper()} {template} is not served"


def test_every_error_answer_is_the_error_shape():
    contract = Contract(load_document())
    for template, item in load_document()["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                schema = contract.resolve(response).get("content", {}).get("application/json", {}).get("schema")
                if int(status) >= 400 and template != "/healthz":
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, template, status)


BAD_ANSWERS = {
    "a missing field": ("GET", "/api/chats", 200, JSON, {"chats": [{"id": 1}]}),
    "an undocumented field": ("GET", "/api/chats", 200, JSON, {"chats": [{**CHAT, "secret": 1}]}),
    "a wrong type": ("GET", "/api/chats", 200, JSON, {"chats": [{**CHAT, "id": "1"}]}),
    "an id of 15 digits": ("POST", "/api/chats/3", 201, JSON, {"status": "ok", "id": 10**15}),
    "an undocumented status": ("GET", "/api/chats", 500, JSON, {"error": "internal server error"}),
    "409 where none is documented": ("PUT", "/api/chats/3", 409, JSON, {"error": "taken"}),
    "an error of another shape": ("GET", "/api/chats/3", 404, JSON, {"error": "gone", "code": 7}),
    "an empty error": ("GET", "/api/chats/3", 404, JSON, {"error": ""}),
    "HTML": ("GET", "/api/chats/3", 404, {"Content-Type": "text/html"}, "<html></html>"),
    "a body that is not JSON": ("GET", "/api/chats", 200, JSON, "chats"),
    "201 without Location": ("POST", "/api/chats", 201, JSON, {"status": "ok", "id": 3}),
    "429 without Retry-After": ("POST", "/api/login", 429, JSON, {"error": "slow down"}),
    "a Retry-After that is no number": (
        "POST", "/api/login", 429, {**JSON, "Retry-After": "soon"}, {"error": "slow down"},
    ),  # fmt: skip
    "a replay flag that is not true": (
        "POST", "/api/chats/3", 201, {**JSON, "Idempotent-Replayed": "yes"}, {"status": "ok", "id": 3},
    ),  # fmt: skip
    "an unknown path answered 200": ("GET", "/api/nothing", 200, JSON, {"status": "ok"}),
    "an unknown method answered 200": ("PATCH", "/api/chats", 200, JSON, {"status": "ok"}),
    "an unknown path answered in HTML": ("GET", "/api/nothing", 404, {"Content-Type": "text/html"}, "<p>no</p>"),
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS), ids=list(BAD_ANSWERS))
def test_the_check_rejects_what_the_document_does_not_allow(case):
    method, path, status, headers, body = BAD_ANSWERS[case]
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(ContractViolation):
        check_response(method, path, status, headers, text)


GOOD_ANSWERS = {
    "a chat list": ("GET", "/api/chats/?x=1", 200, JSON, {"chats": [CHAT]}),
    "a creation": ("POST", "/api/chats", 201, {**JSON, "Location": "/api/chats/3"}, {"status": "ok", "id": 3}),
    "an unknown path": ("GET", "/api/nothing", 404, JSON, {"error": "no such endpoint"}),
    "an unknown method": ("PATCH", "/api/chats/3", 405, {**JSON, "Allow": "GET"}, {"error": "method not allowed"}),
    "a rate limit": ("POST", "/api/login", 429, {**JSON, "Retry-After": "60"}, {"error": "slow down"}),
}


@pytest.mark.parametrize("case", list(GOOD_ANSWERS), ids=list(GOOD_ANSWERS))
def test_the_check_accepts_documented_answers(case):
    method, path, status, headers, body = GOOD_ANSWERS[case]
    check_response(method, path, status, headers, json.dumps(body))


@pytest.mark.gen_test
async def test_the_api_client_checks_every_real_answer(make_user, monkeypatch):
    """A document that drifted from the server fails the test that meets the difference."""
    alice = await make_user()
    await create_chat(alice, "plans")
    drifted = copy.deepcopy(load_document())
    del drifted["components"]["schemas"]["ChatSummary"]["properties"]["owner_id"]
    monkeypatch.setattr(apiclient, "check_response", Contract(drifted).check)
    with pytest.raises(ContractViolation, match="owner_id"):
        await alice.get("/api/chats")
