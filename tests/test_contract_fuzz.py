"""Schemathesis against a live `run.py`: generated requests for every operation
in docs/openapi.yaml, then stateful runs along its links (register -> create
chat -> send -> history ...). No answer may be a 5xx, and every answer must be
documented (status, Content-Type, headers, body schema).

Bounded and reproducible: a fixed number of examples per operation,
derandomized, no example database.
"""

import collections
import re

import hypothesis
import pytest
import requests
import schemathesis

from .apiclient import unique_name
from .contract import SPEC_PATH
from .processes import RunningServer

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
CONFIG = {
    "seed": 20261123,
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    # Only the document's own links (the inferred ones guess wrongly here), and
    # valid data along them, to get deep; the stateless run covers invalid data.
    "phases": {"stateful": {"inference": {"algorithms": []}, "generation": {"mode": "positive"}}},
}
COMMON = dict(
    derandomize=True,
    database=None,
    deadline=None,
    # Each example is a real HTTP request to a real server: slow by design.
    suppress_health_check=list(hypothesis.HealthCheck),
)
STATELESS = hypothesis.settings(max_examples=50, **COMMON)
STATEFUL = hypothesis.settings(max_examples=100, stateful_step_count=10, **COMMON)
# Answers after which the fuzzing user's session is over.
SESSION_ENDERS = {"GET /api/logout", "POST /api/logout", "DELETE /api/user/{user_id}"}
REGISTRATIONS = {"POST /api/reg", "POST /api/user", "POST /api/user/{user_id}"}
LOGINS = REGISTRATIONS | {"POST /api/login"}
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def fresh_name(case) -> None:
    """A valid generated name becomes an unused one, so a registration's answer
    depends on the request alone, not on what earlier examples registered."""
    body = case.body
    if case.operation.label in REGISTRATIONS and isinstance(body, dict) and isinstance(body.get("name"), str):
        if NAME_RE.fullmatch(body["name"]):
            body["name"] = unique_name("st")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = RunningServer("--rate-limits", "off", "--data-dir", str(tmp_path_factory.mktemp("fuzz")))
    yield server
    assert server.stop() == 0


class Session:
    """The session cookies generated requests carry; renewed when a request ends them."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies: dict[str, str] = {}
        self.renew()

    def renew(self) -> None:
        name = unique_name("fuzz")
        response = requests.post(
            f"{self.base_url}/api/reg",
            data={"name": name, "password": "correct horse", "email": f"{name}@example.org"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        self.cookies = dict(response.cookies)

    def after(self, case, response) -> None:
        if case.operation.label in SESSION_ENDERS and response.status_code == 200:
            self.renew()


@pytest.fixture(scope="module")
def session(live_server):
    return Session(live_server.base)


# Loaded at import, so that pytest gets one test per operation (each with its
# own copy of the configuration: the live server's address goes with each call).
schema = schemathesis.openapi.from_path(SPEC_PATH, config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(scope="module")
def api_schema(live_server):
    schema.config.update(base_url=live_server.base)
    return schema


@schema.parametrize()
@STATELESS
def test_every_operation_answers_as_documented(case, live_server, session):
    fresh_name(case)
    response = case.call(base_url=live_server.base, cookies=session.cookies)
    session.after(case, response)
    case.validate_response(response)


@pytest.mark.timeout(600)
def test_linked_sequences_answer_as_documented(api_schema, live_server):
    answers = collections.Counter()
    base = api_schema.as_state_machine()

    class Workflow(base):
        """Each scenario starts as a new user; a registration or login in it takes over.

        Hypothesis replays choices and expects the same rules to be possible
        again, so every answer that feeds a link must not depend on earlier
        scenarios: fresh users, fresh names.
        """

        def setup(self):
            self.cookies = Session(live_server.base).cookies

        def get_call_kwargs(self, case):
            return {"cookies": self.cookies}

        def before_call(self, case):
            fresh_name(case)

        def after_call(self, response, case):
            answers[case.operation.label, response.status_code] += 1
            if case.operation.label in LOGINS and response.status_code in (200, 201):
                self.cookies = _set_cookies(response)
            elif case.operation.label in SESSION_ENDERS and response.status_code == 200:
                self.cookies = Session(live_server.base).cookies

    Workflow.run(settings=STATEFUL)
    # The links carried real ids and cookies: the flow got past the front door.
    for step in (("POST /api/chats", 201), ("POST /api/chats/{chat_id}", 201), ("GET /api/chats/{chat_id}", 200)):
        assert answers[step], f"no {step[0]} answered {step[1]}: {sorted(answers.items())}"


def _set_cookies(response) -> dict[str, str]:
    """The session cookies a registration or login answer sets."""
    found = {}
    for header in response.headers.get("set-cookie", []):
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found
