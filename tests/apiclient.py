"""A small cookie-keeping client for the API tests, over Tornado's real HTTP client.

Every answer is checked against the API contract, docs/openapi.yaml (tests/contract.py).
"""

import http.cookies
import json
import time
import urllib.parse
import uuid
from email.utils import parsedate_to_datetime

from .contract import check_response


class Response:
    def __init__(self, tornado_response):
        self.code = tornado_response.code
        self.headers = tornado_response.headers
        self.text = (tornado_response.body or b"").decode()

    def json(self):
        return json.loads(self.text)

    def __repr__(self):
        return f"<Response {self.code} {self.text[:200]!r}>"


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class ApiClient:
    """One user agent: sends form bodies, keeps the cookies the server sets."""

    def __init__(self, http_client, base_url: str):
        self._http = http_client
        self.base_url = base_url
        self.cookies: dict[str, str] = {}
        self.user_id: int | None = None
        self.name: str | None = None

    async def request(self, method, path, data=None, params=None, headers=None, body=None):
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        all_headers = dict(headers or {})
        if data is not None:
            body = urllib.parse.urlencode(data)
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = ""
        response = await self._http.fetch(
            url,
            method=method,
            body=body,
            headers=all_headers,
            raise_error=False,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            request_timeout=30,
        )
        if response.code != 599:  # 599: no answer at all (the connection failed)
            # Every answer a test sees must be one docs/openapi.yaml allows.
            check_response(method, path, response.code, response.headers, response.body or b"")
        self._keep_cookies(response.headers.get_list("Set-Cookie"))
        return Response(response)

    async def get(self, path, params=None, **kw):
        return await self.request("GET", path, params=params, **kw)

    async def post(self, path, data=None, **kw):
        return await self.request("POST", path, data=data, **kw)

    async def put(self, path, data=None, **kw):
        return await self.request("PUT", path, data=data, **kw)

    async def delete(self, path, params=None, **kw):
        return await self.request("DELETE", path, params=params, **kw)

    async def register(self, name=None, password="correct horse", email=None) -> Response:
        name = name or unique_name()
        response = await self.post(
            "/api/reg", {"name": name, "password": password, "email": email or f"{name}@example.org"}
        )
        if response.code == 201:
            self.user_id = int(self.cookies["user_id"])
            self.name = name
        return response

    def _keep_cookies(self, set_cookie_headers):
        for header in set_cookie_headers:
            jar = http.cookies.SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                expires = morsel["expires"]
                if expires and parsedate_to_datetime(expires).timestamp() < time.time():
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value
