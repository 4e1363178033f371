"""What each finished request leaves behind: its Prometheus metrics and its
one access-log line.

Each application has its own registry (tests build many apps in one
process), so with `--workers N` a scrape of /metrics sees the one worker
that answered it.
"""

import logging
import re
import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

access_log = logging.getLogger("tornado.access")

# Any path no route matches counts under one label, so clients cannot grow the label set.
UNMATCHED_ROUTE = "unmatched"
# HTTP methods are client-chosen strings: anything else counts as "other".
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))
_GROUP = re.compile(r"\([^)]*\)")
_ESCAPED = re.compile(r"\\(.)")


class Metrics:
    """The registry and metric objects of one application."""

    def __init__(self, hub, not_found_class: type, read_cache):
        self.registry = CollectorRegistry()
        self.registry.register(ReadCacheCollector(read_cache))
        self.requests = Counter(
            "chat_http_requests",
            "HTTP requests answered, by route pattern, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chat_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route pattern.",
            ["route"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "chat_redis_errors",
            "HTTP requests answered 503 because Redis failed, by exception kind.",
            ["kind"],
            registry=self.registry,
        )
        sockets = Gauge("chat_websockets_open", "WebSocket connections open on this process.", registry=self.registry)
        sockets.set_function(lambda: hub.socket_count)  # read at scrape time
        chats = Gauge(
            "chat_live_chats_followed",
            "Chats this process follows for its sockets (one pub/sub subscription each).",
            registry=self.registry,
        )
        chats.set_function(lambda: hub.chat_count)
        watched = Gauge(
            "chat_presence_watched_users",
            "Users whose presence this process follows for its sockets (one subscription each).",
            registry=self.registry,
        )
        watched.set_function(lambda: hub.presence.watched_count)
        self._not_found_class = not_found_class
        self._routes: dict[type, list[tuple[re.Pattern, str]]] | None = None

    def log_request(self, handler) -> None:
        """Tornado's `log_function`: counts the finished request and logs one line for it."""
        request = handler.request
        status = handler.get_status()
        seconds = request.request_time()
        route = self.route_of(handler)
        method = request.method if request.method in KNOWN_METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status == 503 and (kind := _failure_kind()) != "Busy":  # (a full queue, not Redis: counted apart)
            self.redis_errors.labels(kind).inc()
        # The path only: the query string may carry form fields (a password).
        _access_level(status)(
            "%s %s %d %.1fms %s", request.method, request.path, status, seconds * 1000, request.remote_ip
        )

    def route_of(self, handler) -> str:
        """The pattern of the route that served the request, e.g. /api/chats/{id}."""
        if self._routes is None:
            self._routes = _routes_by_class(handler.application)
        candidates = self._routes.get(type(handler))
        if not candidates or type(handler) is self._not_found_class:
            return UNMATCHED_ROUTE
        if len(candidates) == 1:
            return candidates[0][1]
        for regex, label in candidates:
            if regex.match(handler.request.path):
                return label
        return candidates[0][1]


class ReadCacheCollector:
    """The read cache's own counts (storage.read_cache), read at scrape time."""

    def __init__(self, cache):
        self._cache = cache

    def collect(self):
        cache = self._cache
        hits = CounterMetricFamily(
            "chat_read_cache_hits", "Reads answered from this process's read cache, by kind.", labels=["kind"]
        )
        misses = CounterMetricFamily(
            "chat_read_cache_misses", "Reads the read cache could not answer (they went to Redis).", labels=["kind"]
        )
        for kind in cache.hits:
            hits.add_metric([kind], cache.hits[kind])
            misses.add_metric([kind], cache.misses[kind])
        yield hits
        yield misses
        yield CounterMetricFamily(
            "chat_read_cache_evictions", "Entries dropped to stay within --read-cache-mb.", value=cache.evictions
        )
        yield GaugeMetricFamily("chat_read_cache_bytes", "Memory the read cache counts itself at.", value=cache.size)
        yield GaugeMetricFamily("chat_read_cache_entries", "Chat lists and pages held.", value=cache.entry_count)
        yield GaugeMetricFamily("chat_read_cache_limit_bytes", "The cap (--read-cache-mb).", value=cache.max_bytes)


class FairSharingCollector:
    """Refusals of the fair-sharing limits (docs/limits.md), and the fan-out's
    backlog, read at scrape time."""

    def __init__(self, storage, hub):
        self._storage = storage
        self._hub = hub

    def collect(self):
        yield CounterMetricFamily(
            "chat_bcrypt_refused", "Logins, registrations and password changes refused: bcrypt's queue was full.",
            value=self._storage.passwords.refused,
        )  # fmt: skip
        yield CounterMetricFamily(
            "chat_user_requests_refused",
            "Requests refused because their user had --requests-per-user others in progress.",
            value=self._storage.fair_share.refused,
        )
        yield CounterMetricFamily(
            "chat_history_reads_refused",
            "History reads refused because --history-reads-in-flight others were in progress for too long.",
            value=self._storage.messages.reads.refused,
        )
        limited = CounterMetricFamily(
            "chat_rate_limited", "Requests refused by a rate limit (429), by limit.", labels=["limit"]
        )
        for limit in ("login_failures", "logins", "registrations", "messages"):
            limited.add_metric([limit], self._storage.limits.refused[limit])
        yield limited
        yield GaugeMetricFamily(
            "chat_fanout_waiting_writes", "Socket writes of live events queued behind a fan-out slice.",
            value=self._hub.fanout.waiting,
        )  # fmt: skip


def _routes_by_class(application) -> dict[type, list[tuple[re.Pattern, str]]]:
    """Handler class -> its rules' (regex, readable pattern), in routing order."""
    routes: dict[type, list[tuple[re.Pattern, str]]] = {}
    for rule in application.wildcard_router.rules:
        regex = getattr(rule.matcher, "regex", None)
        if regex is not None and isinstance(rule.target, type):
            routes.setdefault(rule.target, []).append((regex, route_label(regex.pattern)))
    return routes


def route_label(pattern: str) -> str:
    """`/api/chats/([^/]+)/?$` -> `/api/chats/{id}`; `/api/openapi\\.json` -> `/api/openapi.json`."""
    label = _ESCAPED.sub(r"\1", _GROUP.sub("{id}", pattern.removesuffix("$").removesuffix("/?")))
    return label or "/"


def _failure_kind() -> str:
    # The log function runs inside Tornado's `except` around the handler
    # (send_error -> finish -> log), so the exception that made the 503 is
    # still the one being handled.
    failure = sys.exc_info()[1]
    return type(failure).__name__ if failure is not None else "unknown"


def _access_level(status: int):
    if status < 400:
        return access_log.info
    return access_log.warning if status < 500 else access_log.error
