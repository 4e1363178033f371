"""One simulated user's HTTP calls, each answer recorded in the ledger."""

import json
import time
from http.cookies import SimpleCookie

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from .ledger import NO_ANSWER, Ledger

REQUEST_TIMEOUT_SECS = 10.0
# Statuses a client answers by trying again (with the same Idempotency-Key).
RETRY_STATUSES = {NO_ANSWER, 502, 503, 504}


class Api:
    def __init__(self, base_url: str, ledger: Ledger):
        self.base_url = base_url
        self.ledger = ledger
        self.cookies: dict[str, str] = {}

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    async def call(self, method: str, path: str, body: dict | None = None, *, what: str = "",
                   headers: dict | None = None) -> tuple[int, dict]:  # fmt: skip
        """(status, JSON answer); status NO_ANSWER when none came."""
        request = HTTPRequest(
            self.base_url + path, method,
            body=json.dumps(body) if body is not None else (b"" if method in ("POST", "PUT") else None),
            headers={"Cookie": self.cookie_header, "Content-Type": "application/json", **(headers or {})},
            request_timeout=REQUEST_TIMEOUT_SECS, follow_redirects=False,
        )  # fmt: skip
        sent = time.monotonic()
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError, StreamClosedError):  # raise_error=False covers only HTTP statuses
            response = None
        status = NO_ANSWER if response is None or response.code == 599 else response.code
        what = f"{method} {what or path}"
        self.ledger.answer(sent, status, what)
        if status >= 500 and status not in RETRY_STATUSES:
            self.ledger.problem("500", f"{what} answered {status}: {response.body[:200]!r}")
        if response is None or status == NO_ANSWER:
            return status, {}
        for header in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        try:
            return status, json.loads(response.body or b"{}")
        except ValueError:
            self.ledger.problem("not JSON", f"{what} answered {status} with a body that is not JSON: {response.body[:200]!r}")
            return status, {}
