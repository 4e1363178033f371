"""HTTP for tests/test_model.py: one user's browser, and checking an answer."""

import requests

from .contract import check_response


class Agent:
    """One user's browser: its own connection and the cookies registration gave it."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        self.cookies: dict[str, str] = {}

    def call(self, method: str, path: str, **kw) -> requests.Response:
        # The cookies are sent as registration gave them, even after the
        # account is deleted: the server must refuse the token, not the client drop it.
        response = self.http.request(
            method, self.base + path, cookies=self.cookies, timeout=30, allow_redirects=False, **kw
        )
        # Every answer is checked against the API contract, as ApiClient's are.
        check_response(method, path.split("?", 1)[0], response.status_code, response.headers, response.content)
        return response

    def close(self) -> None:
        self.http.close()


def expect(response: requests.Response, status: int) -> dict:
    """The JSON body of an answer that must have this status (an error must be {"error": ...})."""
    what = f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:300]}"
    assert response.status_code == status, f"expected {status}: {what}"
    assert response.headers["Content-Type"].startswith("application/json"), what
    body = response.json()
    if status >= 400:
        assert set(body) == {"error"} and isinstance(body["error"], str), what
    return body
