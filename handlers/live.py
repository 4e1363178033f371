"""GET /api/ws: a WebSocket that pushes every change to the people it concerns,
takes `send` requests with the same checks as POST /api/chats/{id},
`resume` requests that replay a chat's events after a seq (server.hub),
`typing` notices and `watch_presence` lists (server.presence)."""

import json
import logging
import time

import redis.exceptions
from tornado.ioloop import PeriodicCallback
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from storage import Forbidden, RateLimited, Unavailable, deadline
from storage.chats import TYPING_HOLD_MS
from storage.events import encode_event
from storage.users import token_digest

from .base import ApiMixin
from .errors import expected_error
from .messages import send_message
from .validation import BadInput, is_encodable, string_fields

log = logging.getLogger("chat.live")

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_SESSION_ENDED = 4001
CLOSE_TOO_SLOW = 4008
REQUEST_ID_MAX_CHARS = 64


class EventsSocket(ApiMixin, WebSocketHandler):
    def initialize(self, storage, settings, rules, hub, socket_limits):
        super().initialize(storage, settings, rules)
        self.hub = hub
        self.socket_limits = socket_limits  # the caps per user and per address
        self.follows: dict = {}  # chat id -> what this socket has of it (kept by the hub)
        self.session: str | None = None
        self._token: str | None = None
        self._pending_bytes = 0
        self._session_checks: PeriodicCallback | None = None
        self.is_ready = False  # `ready` sent
        self._before_ready: list | None = []  # events that came before `ready`, sent right after it
        self._sending = False  # a send is being stored
        self._going_away = False
        self._typing_until: dict[int, float] = {}  # chat id -> when this socket's last typing notice lapses
        self._resuming = True  # until its first request that is not a resume (see Hub.ready)
        # What one chat may hold in memory for the client's resume (Hub.ready):
        # past it, what waited is read from the chat's log instead.
        self.hold_max_bytes = self.config.ws_max_pending_bytes // 4

    async def prepare(self):
        # Before the upgrade: no valid session, no socket (a JSON 401).
        self._check_method()
        self.check_cookie_size()
        # Asks Redis, not the session cache: a socket lives long, and a Redis
        # that does not answer must be a 503 now, not a socket that never works.
        self.user_id = await self.authenticate(fresh=True)
        self._token = self.get_cookie("token")
        self.session = token_digest(self._token)

    async def get(self, *args, **kwargs):
        # Tornado answers these in plain text or HTML; ours are JSON.
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise BadInput("this endpoint needs a WebSocket upgrade (Upgrade: websocket)")
        if self.source.is_cross_site(self.request):
            raise Forbidden("cross-origin WebSocket connections are not allowed")
        if self.request.headers.get("Sec-WebSocket-Version") not in ("7", "8", "13"):
            raise HTTPError(426)
        # Counted before the upgrade, so that past a cap the answer is a 429.
        address = self.source.client_address(self.request)
        async with deadline.within(self.config.redis_timeout_secs):
            claim = await self.socket_limits.claim(self.user_id, address)
        try:
            await super().get(*args, **kwargs)  # returns when the socket has ended (or was not opened)
        finally:
            self.socket_limits.release(claim)

    def check_origin(self, origin: str) -> bool:
        # The same rule as the HTTP writes (handlers/request_source.py).
        return not self.source.is_cross_site(self.request)

    def write_error(self, status_code: int, **kwargs) -> None:
        if status_code == 426:
            self.set_header("Sec-WebSocket-Version", "13")  # the version we speak
        super().write_error(status_code, **kwargs)

    async def open(self):
        self.set_nodelay(True)
        # What the kernel cannot take waits in _pending_bytes (capped: 4008).
        self.socket_limits.cap_send_buffer(self.ws_connection.stream)
        try:
            await self.hub.join(self)
        except (redis.exceptions.RedisError, Unavailable, OSError):
            self.close(CLOSE_TRY_AGAIN_LATER, "storage is unavailable, try again shortly")
            return
        # Subscribed and confirmed: anything that happens from now on will
        # arrive. A logout before the subscription is caught here.
        if not await self.session_is_valid() or self._closed():
            return  # (closed while subscribing: on_close has run, start nothing)
        self._write(encode_event("ready", user_id=self.user_id))
        self.is_ready = True
        waiting, self._before_ready = self._before_ready, None
        for event in waiting:
            self._write(event)
        self.hub.ready(self)
        self._session_checks = PeriodicCallback(
            self.session_is_valid, self.config.ws_session_check_secs * 1000
        )
        self._session_checks.start()

    def on_close(self):
        if self._session_checks is not None:
            self._session_checks.stop()
        self.hub.leave(self)

    def end_session(self) -> None:
        self.close(CLOSE_SESSION_ENDED, "session ended")

    def going_away(self) -> None:
        """Closes with 1001; a send being stored is answered first (as an
        HTTP request in flight is), then the socket closes."""
        self._going_away = True
        if not self._sending:
            self.close(CLOSE_GOING_AWAY, "server shutting down")

    async def session_is_valid(self, fresh: bool = True) -> bool:
        """Re-checks the session (expiry, a missed logout); closes the socket if it is over."""
        try:
            async with deadline.within(self.config.redis_timeout_secs):
                valid = await self.storage.users.has_session(self.user_id, self._token, fresh=fresh)
        except (redis.exceptions.RedisError, Unavailable):
            return True  # cannot tell now; the next check will
        if not valid:
            self.end_session()
        return valid

    async def on_message(self, frame):
        # Tornado reads the next frame only when this returns: one socket's
        # sends are stored in the order they were sent.
        if self._going_away or self._closed():
            return  # Tornado still hands over frames after close(); nothing would be answered
        self._sending = True
        try:
            await self._handle_frame(frame)
        finally:
            self._sending = False
            if self._going_away:
                self.close(CLOSE_GOING_AWAY, "server shutting down")

    async def _handle_frame(self, frame) -> None:
        request_id = None
        try:
            data = self._decode(frame)
            request_id = _request_id(data)
            # A null field is an absent one, as JSON clients often send them.
            fields = {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data
            # The one field that is an array (watch_presence's); its op checks it.
            user_ids = fields.pop("user_ids", None) if isinstance(fields, dict) else None
            request = string_fields(fields, "a frame")
            if user_ids is not None:
                request["user_ids"] = user_ids
            op = OPS.get(request.get("op"))
            if op is None:
                raise BadInput('unknown op: "send", "resume", "typing" or "watch_presence"')
            if self._resuming and op is not EventsSocket._resume:
                self._resuming = False
                self.hub.end_hold(self)  # a client that does not resume gets its chats' events now
            if not await self.session_is_valid(fresh=False):
                return
            async with self.storage.fair_share.turn(self.user_id, self.config.redis_timeout_secs / 2):
                reply = await op(self, request_id, request)
        except Exception as exc:
            status, message = _describe(exc)
            extra = {"retry_after": exc.retry_after_secs} if isinstance(exc, RateLimited) else {}
            if isinstance(exc, _ChatError):
                extra["chat_id"] = exc.chat_id
            reply = encode_event("error", request_id=request_id, status=status, error=message, **extra)
        if reply is not None:  # (typing answers nothing; watch_presence sends its own)
            self.deliver(reply)

    async def _send(self, request_id, request: dict) -> str:
        async with deadline.within(self.config.redis_timeout_secs):
            chat_id, sent = await send_message(
                self, request.get("chat_id"), request.get("content"), request.get("idempotency_key"),
                key_name="idempotency_key",
            )
        # `replayed` only on a retry answered from its first send, as HTTP's header.
        replayed = {"replayed": True} if sent.replayed else {}
        return encode_event("ack", request_id=request_id, chat_id=chat_id, message_id=sent.message_id, **replayed)

    async def _resume(self, request_id, request: dict) -> str:
        """Replays the chat's events after `since` (then live ones follow); the
        ack comes after the replayed events."""
        chat_id = self.rules.entity_id(request.get("chat_id"), "chat_id")
        try:
            since = self.rules.since(request.get("since"))
            epoch = self.rules.epoch(request.get("epoch"))
            async with deadline.within(self.config.redis_timeout_secs):
                seq, epoch = await self.hub.resume(self, chat_id, since, epoch)
        except Exception as exc:
            raise _ChatError(chat_id) from exc
        return encode_event("ack", request_id=request_id, chat_id=chat_id, seq=seq, epoch=epoch)

    async def _typing(self, request_id, request: dict) -> None:
        """Tells the chat's other members this user is typing; answers only an error."""
        chat_id = self.rules.entity_id(request.get("chat_id"), "chat_id")
        now = time.monotonic()
        if self._typing_until.get(chat_id, 0) > now:
            return  # this socket's last notice still holds: Redis would drop this one too
        try:
            async with deadline.within(self.config.redis_timeout_secs):
                sent = await self.storage.chats.typing(self.user_id, chat_id)
        except Exception as exc:
            raise _ChatError(chat_id) from exc
        if sent:
            self._typing_until = {c: t for c, t in self._typing_until.items() if t > now}
            self._typing_until[chat_id] = now + TYPING_HOLD_MS / 1000

    async def _watch_presence(self, request_id, request: dict) -> None:
        """Watches the presence of the given users who share a chat with this one
        (replacing the list): the ack, their states, then every change."""
        if request.get("user_ids") is None:
            raise BadInput("user_ids is required")
        states = await self.hub.presence.watch(self, self.rules.user_ids(request["user_ids"]))
        self.deliver(encode_event("ack", request_id=request_id, watching=[user_id for user_id, _ in states]))
        for user_id, online in states:
            self.deliver(encode_event("presence", user_id=user_id, online=online))

    def _closed(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    def deliver(self, event: str | bytes) -> None:
        """Queues an event for the client (after `ready`: what arrives while the
        socket is being set up waits for it); a client that falls too far
        behind is dropped."""
        if self._before_ready is not None:
            self._before_ready.append(event)
            return
        self._write(event)

    def _write(self, event: str | bytes) -> None:
        if self._closed():
            return
        data = event.encode() if isinstance(event, str) else event
        size = len(data)
        if self._pending_bytes + size > self.config.ws_max_pending_bytes:
            log.info("dropping user %s's socket: %d bytes unsent", self.user_id, self._pending_bytes)
            self.socket_limits.dropped_too_slow()
            self.close(CLOSE_TOO_SLOW, "too slow: outgoing buffer full")
            return
        self._pending_bytes += size
        try:
            self.write_message(data).add_done_callback(lambda f: self._written(size, f))
        except WebSocketClosedError:
            pass

    def write_message(self, message, binary: bool = False):
        """Tornado's, but an event shared by many sockets (server.fanout)
        brings its frame, built once, instead of one built per socket."""
        frame = getattr(message, "websocket_frame", None)
        connection = self.ws_connection
        compressed = self.get_compression_options() is not None  # (never so: none is offered)
        if frame is None or binary or compressed or connection is None or connection.is_closing():
            return super().write_message(message, binary)
        try:
            return connection.stream.write(frame)
        except StreamClosedError:
            raise WebSocketClosedError() from None

    def _written(self, size: int, future) -> None:
        self._pending_bytes -= size
        future.exception()  # a closed socket's writes fail; that is expected here

    def _decode(self, frame) -> object:
        if isinstance(frame, bytes):
            raise BadInput("frames must be text: a JSON object")
        if len(frame) > self.config.max_body_bytes:
            raise FrameTooLarge(f"frame too large: at most {self.config.max_body_bytes} characters")
        try:
            return json.loads(frame)
        except (ValueError, RecursionError):
            raise BadInput("the frame is not valid JSON") from None


OPS = {
    "send": EventsSocket._send, "resume": EventsSocket._resume,
    "typing": EventsSocket._typing, "watch_presence": EventsSocket._watch_presence,
}  # fmt: skip


class FrameTooLarge(Exception):
    pass


class _ChatError(Exception):
    """A request about one chat failed (its cause says how): the error names the chat."""

    def __init__(self, chat_id: int):
        super().__init__(chat_id)
        self.chat_id = chat_id


def _request_id(data) -> str | int | None:
    """The client's request id, echoed in the answer as it was sent."""
    request_id = data.get("request_id") if isinstance(data, dict) else None
    if request_id is None:
        return None
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        raise BadInput("request_id must be a string or an integer")
    if isinstance(request_id, str) and not is_encodable(request_id):
        raise BadInput("request_id is not valid unicode")
    if len(str(request_id)) > REQUEST_ID_MAX_CHARS:
        raise BadInput(f"request_id must be at most {REQUEST_ID_MAX_CHARS} characters")
    return request_id


def _describe(exc: Exception) -> tuple[int, str]:
    """The status and message an HTTP request would have got for this failure."""
    if isinstance(exc, _ChatError):
        exc = exc.__cause__
    if isinstance(exc, FrameTooLarge):
        return 413, str(exc)
    expected = expected_error(exc)
    if expected is None:
        log.error("socket request failed", exc_info=exc)
        return 500, "internal server error"
    return expected
