"""What every handler shares: checks in the documented order, body parsing,
the session, cookies, and the one JSON error shape.

Order of checks: 405 (method) -> 413 (body size) -> 403 (a write from
another site) -> 401 (session) -> 400 (input) -> 404 (object) -> 403
(access) -> 409 (conflict); 429 (rate limit) comes just before the work it
protects (password checks, storing a message).
"""

import functools
import json
import logging
import re

import orjson
import redis.exceptions
from tornado import httputil
from tornado.web import HTTPError, RequestHandler, stream_request_body

from storage import Forbidden, RateLimited, deadline

from .errors import expected_error, status_message
from .request_source import request_source
from .validation import BadInput, string_fields

log = logging.getLogger("chat.http")

# ASCII digits only: str.isdigit() also takes "²" (a Latin-1 byte), which int() refuses.
_CONTENT_LENGTH_RE = re.compile(r"[0-9]{1,18}")


class ApiMixin:
    """Dependencies, the session check and the JSON error shape, for the
    HTTP handlers and the WebSocket alike."""

    def initialize(self, storage, settings, rules):
        self.storage = storage
        self.config = settings
        self.rules = rules
        self.user_id: int | None = None
        self.source = request_source(settings)

    def set_default_headers(self):
        # Tornado names itself and its version in `Server`; say nothing.
        self.clear_header("Server")

    async def authenticate(self, *, fresh: bool = False) -> int:
        """The user id of a valid session from the cookies, else HTTP 401;
        `fresh` asks Redis rather than the process's session cache. (The
        Cookie header's size is checked before, in each handler's prepare().)"""
        session = self.rules.session(self.get_cookie("user_id"), self.get_cookie("token"))
        if session is None:
            raise HTTPError(401)
        async with deadline.within(self.config.redis_timeout_secs):
            if not await self.storage.users.has_session(*session, fresh=fresh):
                raise HTTPError(401)
        return session[0]

    def check_cookie_size(self) -> None:
        """A Cookie header past --max-cookie-bytes is 431, before parsing it
        costs anything (a 60 kB one took 29 ms of CPU)."""
        size = sum(len(value) for value in self.request.headers.get_list("Cookie"))
        if size > self.config.max_cookie_bytes:
            raise HTTPError(431)

    def write_json(self, payload) -> None:
        self.write(orjson.dumps(payload))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        expected = expected_error(exc)
        if expected is not None:
            status_code, message = expected
            self.set_status(status_code)
        else:
            message = status_message(status_code, exc)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        if status_code == 405:
            self.set_header("Allow", ", ".join(self._allowed_methods()))
        if status_code == 413:
            self.set_header("Connection", "close")
        if isinstance(exc, RateLimited):
            self.set_header("Retry-After", str(exc.retry_after_secs))
        self.write_json({"error": message})

    def log_exception(self, typ, value, tb) -> None:
        if expected_error(value) is not None:
            if isinstance(value, redis.exceptions.RedisError):
                log.warning("redis unavailable: %s", value)
            return
        if isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)
            return
        # Tornado's own line would carry the query string (which may hold a
        # password: fields are read from it too) and the request's repr.
        log.error("uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))

    def _request_summary(self) -> str:
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    def _check_method(self) -> None:
        if self.request.method not in self._allowed_methods():
            raise HTTPError(405)

    def _allowed_methods(self) -> list[str]:
        return [
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower(), None) is not getattr(RequestHandler, method.lower(), None)
        ]


def _checked(method):
    """A verb that checks its caller first, all under the request's deadline."""

    @functools.wraps(method)
    async def run(self, *args, **kwargs):
        async with deadline.within(self.config.redis_timeout_secs):
            await self.check_caller()
            # A user's requests hold at most their share of the Redis pool (storage.fair_share).
            async with self.storage.fair_share.turn(self.user_id, (deadline.remaining() or 0) / 2):
                return await method(self, *args, **kwargs)

    return run


@stream_request_body
class BaseHandler(ApiMixin, RequestHandler):
    # Methods that need no session (registration, login).
    public_methods: tuple[str, ...] = ()
    # Methods that change something: refused when a browser sends them from another site.
    writing_methods: tuple[str, ...] = ("POST", "PUT", "PATCH", "DELETE")

    def __init_subclass__(cls, **kwargs):
        # Every verb checks its caller first, and runs under the request's deadline.
        super().__init_subclass__(**kwargs)
        for verb in ("get", "post", "put", "delete", "patch"):
            if verb in cls.__dict__:
                setattr(cls, verb, _checked(cls.__dict__[verb]))

    def initialize(self, storage, settings, rules):
        super().initialize(storage, settings, rules)
        self._chunks: list[bytes] = []
        self._body_size = 0
        self._fields: dict[str, str] | None = None

    def set_default_headers(self):
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    def compute_etag(self):
        return None  # answers are per user and change constantly

    async def prepare(self):
        # Only what can be told before the body arrives. Answering anything
        # else here, with the body unread, would make Tornado drop the
        # keep-alive connection: the caller checks wait for the verb.
        self._check_method()
        self._check_declared_size()
        self.check_cookie_size()

    async def check_caller(self) -> None:
        """A write from another site is 403; a missing or ended session 401."""
        if self.request.method in self.writing_methods and self.source.is_cross_site(self.request):
            raise Forbidden("cross-site requests may not change anything")
        if self.request.method not in self.public_methods:
            self.user_id = await self.authenticate()

    def data_received(self, chunk: bytes):
        # A chunked body has no Content-Length to refuse up front: answer
        # 413 as soon as it passes the limit; finishing closes the connection.
        if self._finished:
            return
        self._body_size += len(chunk)
        if self._body_size > self.config.max_body_bytes:
            self.send_error(413)
            return
        self._chunks.append(chunk)

    # Input

    def arg(self, name: str) -> str | None:
        """A field from the body (form or JSON), else from the query string."""
        if self._fields is None:
            self._fields = self._parse_body()
        if name in self._fields:
            return self._fields[name]
        values = self.request.query_arguments.get(name)
        return self.decode_argument(values[-1], name=name) if values else None

    def _parse_body(self) -> dict[str, str]:
        body = b"".join(self._chunks)
        content_type = self.request.headers.get("Content-Type", "application/x-www-form-urlencoded")
        if content_type.split(";")[0].strip().lower() == "application/json":
            try:
                data = json.loads(body or b"{}")
            except (ValueError, RecursionError) as exc:
                raise BadInput("the request body is not valid JSON") from exc
            return string_fields(data, "the JSON body")
        arguments: dict[str, list[bytes]] = {}
        try:
            httputil.parse_body_arguments(content_type, body, arguments, {}, self.request.headers)
        except httputil.HTTPInputError as exc:
            raise BadInput("the request body could not be parsed") from exc
        return {key: self.decode_argument(values[-1], name=key) for key, values in arguments.items()}

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        if name is None:
            # A path part, decoded before prepare(): the session must be
            # checked first, so let the id rule refuse it later.
            return value.decode("utf-8", errors="replace")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{name} is not valid UTF-8") from None

    def client_address(self) -> str:
        return self.source.client_address(self.request)

    # Session

    async def start_session(self, user_id: int, token: str | None = None) -> None:
        """Sets the session cookies; a new session unless `token` is given."""
        if token is None:
            token = await self.storage.users.create_session(user_id)
        days = self.config.token_ttl_secs / 86400
        for name, value in (("user_id", str(user_id)), ("token", token)):
            self.set_cookie(
                name,
                value,
                path="/",
                expires_days=days,
                httponly=True,
                samesite="Lax",
                secure=self.config.cookie_secure,
            )

    def expire_session_cookies(self) -> None:
        for name in ("user_id", "token"):
            self.clear_cookie(name, path="/", httponly=True, samesite="Lax", secure=self.config.cookie_secure)

    # Output

    def reply(self, status: int = 200, **extra) -> None:
        """The documented success answer, {"status": "ok"}, plus any extra fields."""
        self.set_status(status)
        self.write_json({"status": "ok", **extra})

    # Checks

    def _check_declared_size(self) -> None:
        declared = self.request.headers.get("Content-Length")
        if declared is None:
            return
        if not _CONTENT_LENGTH_RE.fullmatch(declared):
            raise BadInput("Content-Length must be a number in ASCII digits")
        if int(declared) > self.config.max_body_bytes:
            raise HTTPError(413)


class NotFoundHandler(BaseHandler):
    """Every path no route matches: 404 for any method, session or not."""

    public_methods = writing_methods = ()

    async def prepare(self):
        self._check_declared_size()
        self.check_cookie_size()

    async def check_caller(self) -> None:
        pass

    async def get(self, *args, **kwargs):
        raise HTTPError(404)

    post = put = delete = patch = head = options = get
