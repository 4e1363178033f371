"""Every tunable of the service, with its default, in one frozen dataclass.

Each field can be set from the command line (`--bcrypt-cost 10`) or from the
environment (`CHAT_BCRYPT_COST=10`); `REDIS_URL` is also read without prefix.
"""

import argparse
import dataclasses
import ipaddress
import os
import urllib.parse
from typing import Any

ENV_PREFIX = "CHAT_"


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    # Empty: start the embedded redis-server under data_dir.
    redis_url: str = ""
    data_dir: str = "./var"
    log_level: str = "info"
    # Server processes sharing the port (SO_REUSEPORT); a supervisor starts them.
    workers: int = 1
    # Bind with SO_REUSEPORT (set by the supervisor for its workers).
    reuse_port: bool = False

    # Rate limits, kept in Redis so they hold across processes. Tools (load
    # tests, benchmarks) pass `--rate-limits off`. The defaults never stop a
    # person chatting by hand.
    rate_limits: bool = True
    # Failed logins (a wrong current password counts too), in a sliding window.
    login_failures_per_name: int = 5
    login_failures_per_address: int = 50
    login_window_secs: int = 15 * 60
    # Accounts created per client address, in a sliding window.
    registrations_per_address: int = 20
    registration_window_secs: int = 3600
    # Messages per user: a burst, then a steady rate (HTTP and socket sends).
    message_burst: int = 30
    messages_per_sec: float = 5.0
    # Comma-separated addresses or networks of reverse proxies whose
    # X-Forwarded-For is believed; empty: the connection's address is the client.
    trusted_proxies: str = ""
    # Comma-separated origins (https://app.example.org) allowed to send
    # cookie-authenticated writes besides the service's own host.
    allowed_origins: str = ""

    # Sessions and passwords.
    bcrypt_cost: int = 12
    # Threads hashing passwords, at the lowest CPU priority; more logins wait.
    bcrypt_threads: int = 2
    # A session ends at the first of: its absolute lifetime from login, or
    # this long without a request.
    token_ttl_secs: int = 30 * 24 * 3600
    token_idle_secs: int = 7 * 24 * 3600
    # Set when the service sits behind TLS, so cookies carry `Secure`.
    cookie_secure: bool = False

    # Input limits.
    name_max_chars: int = 32
    password_min_bytes: int = 8
    password_max_bytes: int = 72  # bcrypt ignores anything past 72 bytes
    email_max_chars: int = 254
    title_max_chars: int = 128
    content_max_chars: int = 4000
    max_body_bytes: int = 64 * 1024
    # A declared body above this is refused without reading; a chunked one is cut off.
    hard_body_bytes: int = 16 * 1024 * 1024
    history_default_limit: int = 100
    history_max_limit: int = 1000
    # How long a send's Idempotency-Key is remembered.
    idempotency_ttl_secs: int = 24 * 3600
    # Events each chat's log keeps at least (for catch-up and resume).
    chat_log_events: int = 10_000
    # How long a process's claim that a user is online lasts unrenewed; it is
    # renewed (and watched users re-read) every third of it, so a crashed
    # process's users are seen offline within 4/3 of it.
    presence_ttl_secs: int = 45
    # Memory each process may use to answer chat lists and the newest page of
    # each chat's history without Redis (kept current by the live events);
    # 0 turns the cache off.
    read_cache_mb: int = 64

    # WebSocket.
    ws_ping_interval_secs: float = 20.0
    ws_ping_timeout_secs: float = 20.0
    # How often an open socket re-checks its session (expiry, a missed logout).
    ws_session_check_secs: float = 60.0
    # Unsent bytes a socket may have queued before it is dropped as too slow.
    ws_max_pending_bytes: int = 1024 * 1024
    # Frames past max_body_bytes get an error event; past this, the socket is closed.
    ws_hard_frame_bytes: int = 1024 * 1024

    # Redis client.
    redis_max_connections: int = 64
    redis_timeout_secs: float = 2.0
    # Replicas that must confirm every write the API acknowledges (Redis WAIT,
    # within the request's deadline; fewer: 503). 0: none (replication is
    # asynchronous). Above the replicas a master has, every such write is a
    # 503: the embedded Redis has none, so it refuses to start; against
    # another Redis the service starts and logs a warning (replicas may be
    # on their way back).
    redis_wait_replicas: int = 0

    # On SIGTERM/SIGINT: how long requests in flight and closing WebSockets may take.
    shutdown_grace_secs: float = 10.0

    # Limits against abuse (docs/limits.md): connections and slow clients.
    # Open connections (WebSockets included) per process; the process lowers
    # it further to stay well below its file limit. Past it: 503 and close.
    max_connections: int = 10_000
    # Open WebSockets per user and per client address, across processes (429).
    ws_per_user: int = 50
    ws_per_address: int = 500
    # A request's head must arrive whole within this of its first byte (or of
    # the connection's opening); a keep-alive connection may wait idle for
    # its next request this long.
    header_timeout_secs: float = 20.0
    idle_timeout_secs: float = 120.0
    # A request's body must arrive whole within body_timeout_secs, and after
    # its first body_grace_secs at body_min_bytes_per_sec on average.
    body_timeout_secs: float = 60.0
    body_grace_secs: float = 15.0
    body_min_bytes_per_sec: int = 500
    # The kernel's send buffer of each WebSocket (Linux doubles it; 0: the
    # kernel's own, which grows to MBs): what it cannot take counts in
    # ws_max_pending_bytes.
    ws_send_buffer_bytes: int = 64 * 1024

    # Limits against abuse (docs/limits.md): fair sharing.
    # Sockets one slice of an event's fan-out writes before other work runs.
    fanout_slice_sockets: int = 50
    # Requests of one user doing Redis work at once, per process; more wait
    # (at most half their deadline), then answer 503 with Retry-After.
    requests_per_user: int = 16
    # History reads from Redis (pages the read cache does not hold) at once,
    # per process, whoever asks; more wait (at most half their deadline), then 503.
    history_reads_in_flight: int = 2
    # Password hashes waiting for a bcrypt thread; past it, 503 with Retry-After.
    bcrypt_queue: int = 16
    # Successful logins per name and per address in the login window.
    logins_per_name: int = 30
    logins_per_address: int = 300

    # Limits against abuse (docs/limits.md): input and operations.
    # A request head (request line and headers) past this closes the connection unanswered.
    max_header_bytes: int = 16 * 1024
    # A Cookie header past this is refused (431) before any cookie is parsed.
    max_cookie_bytes: int = 8 * 1024
    # A message's content as stored: its JSON string (control characters take 6 bytes each).
    content_max_bytes: int = 16 * 1024
    # A page of history stops early past this many bytes of message JSON (always one message at least).
    history_page_max_bytes: int = 1024 * 1024
    # Comma-separated networks whose clients may read /metrics (the client's address, see trusted_proxies).
    metrics_allow: str = "127.0.0.0/8,::1"
    # Lines per second each kind of log line (logger and message template) may write; the rest are counted.
    log_lines_per_sec: int = 10


    def __post_init__(self):
        """Refuses values the service cannot work with, at start rather than per request."""
        at_least_one = ("workers", "login_failures_per_name", "login_failures_per_address", "login_window_secs",
                        "registrations_per_address", "registration_window_secs", "message_burst",
                        "token_ttl_secs", "token_idle_secs", "idempotency_ttl_secs", "redis_max_connections",
                        "max_body_bytes", "history_default_limit", "history_max_limit", "chat_log_events",
                        "content_max_bytes", "history_page_max_bytes", "log_lines_per_sec", "history_reads_in_flight")  # fmt: skip
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("messages_per_sec", "redis_timeout_secs"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0")
        for name in ("fanout_slice_sockets", "requests_per_user", "bcrypt_threads", "logins_per_name",
                     "logins_per_address"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.bcrypt_queue < 0:
            raise ValueError("bcrypt_queue must be 0 or more")
        if self.redis_wait_replicas < 0:
            raise ValueError("redis_wait_replicas must be 0 or more")
        if self.redis_wait_replicas and not self.redis_url:
            raise ValueError("redis_wait_replicas needs a Redis with replicas (--redis-url): the embedded one has none")
        if self.read_cache_mb < 0:
            raise ValueError("read_cache_mb must be 0 or more")
        if not 3 <= self.presence_ttl_secs <= 3600:
            raise ValueError("presence_ttl_secs must be 3-3600")
        if not 4 <= self.bcrypt_cost <= 31:
            raise ValueError("bcrypt_cost must be 4-31")
        for part in _items(self.trusted_proxies):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {part!r} is not an address or network") from None
        if not 1024 <= self.max_cookie_bytes <= self.max_header_bytes:
            raise ValueError("max_cookie_bytes must be at least 1024 and at most max_header_bytes")
        for part in _items(self.metrics_allow):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"metrics_allow: {part!r} is not an address or network") from None
        for part in _items(self.allowed_origins):
            parts = urllib.parse.urlsplit(part)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"allowed_origins: {part!r} is not an origin like https://app.example.org")
        self._check_connection_limits()

    def _check_connection_limits(self):
        """The caps and timeouts of docs/limits.md's "Connections and slow clients"."""
        for name in ("max_connections", "ws_per_user", "ws_per_address", "body_min_bytes_per_sec"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("header_timeout_secs", "idle_timeout_secs", "body_timeout_secs"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0")
        if self.body_grace_secs < 0:
            raise ValueError("body_grace_secs must be 0 or more")
        if self.ws_send_buffer_bytes and self.ws_send_buffer_bytes < 4096:
            raise ValueError("ws_send_buffer_bytes must be 0 (the kernel's) or at least 4096")


def _items(text: str) -> list[str]:
    """The parts of a comma-separated setting."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _env_name(field: dataclasses.Field) -> str:
    return ENV_PREFIX + field.name.upper()


def build_parser() -> argparse.ArgumentParser:
    """A parser with one `--flag` per setting; defaults come from the environment."""
    parser = argparse.ArgumentParser(description="Chat backend on Tornado and Redis.")
    for field in dataclasses.fields(Settings):
        kind = type(field.default)
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=_parse_bool if kind is bool else kind,
            default=None,
            help=f"(env {_env_name(field)}, default {field.default!r})",
        )
    return parser


def load_settings(argv: list[str] | None = None, environ: dict | None = None) -> Settings:
    """Settings from defaults, then the environment, then command-line flags."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        kind = type(field.default)
        raw = environ.get(_env_name(field))
        if field.name == "redis_url" and raw is None:
            raw = environ.get("REDIS_URL")
        if raw is not None:
            try:
                values[field.name] = _parse_bool(raw) if kind is bool else kind(raw)
            except (ValueError, argparse.ArgumentTypeError):
                build_parser().error(f"{_env_name(field)}: not a valid {kind.__name__}: {raw!r}")
        flag = getattr(args, field.name)
        if flag is not None:
            values[field.name] = flag
    try:
        return Settings(**values)
    except ValueError as exc:
        build_parser().error(str(exc))
