"""The application factory: routes, and the HTTP server that carries them."""

import asyncio
import socket

import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry
from tornado.httpserver import HTTPServer
from tornado.web import Application

from handlers.auth import LoginHandler, LogoutHandler, RegisterHandler
from handlers.base import NotFoundHandler
from handlers.chats import ChatsHandler
from handlers.events import ChatEventsHandler
from handlers.live import EventsSocket
from handlers.members import MembersHandler
from handlers.messages import ChatHandler, MessageHandler
from handlers.openapi import OpenApiHandler
from handlers.ops import HealthHandler, MetricsHandler
from handlers.reads import ReadHandler
from handlers.users import UserHandler
from handlers.web import WEB_DIR, ApiDocsFileHandler, ApiDocsHandler, PageHandler, WebFileHandler, api_docs_folder
from handlers.validation import Rules
from storage import Storage

from .connection_limits import ConnectionStats, GuardedHTTPServer, connection_cap
from .hub import Hub
from .metrics import FairSharingCollector, Metrics
from .settings import Settings
from .socket_limits import SocketLimits


def make_app(settings: Settings, storage: Storage, hub: Hub) -> Application:
    """The Tornado application serving the whole API over one storage."""
    deps = {"storage": storage, "settings": settings, "rules": Rules(settings)}
    metrics = Metrics(hub, NotFoundHandler, storage.read_cache)
    metrics.registry.register(FairSharingCollector(storage, hub))
    # Shared with the HTTP server (make_http_server), which counts connections.
    connection_stats = ConnectionStats()
    metrics.registry.register(connection_stats)
    socket_limits = SocketLimits(storage, settings, connection_stats)
    routes = [
        (r"/healthz/?", HealthHandler, deps),
        (r"/metrics/?", MetricsHandler, {**deps, "metrics": metrics}),
        (r"/api/openapi\.json/?", OpenApiHandler, deps),
        # The web client and the API reference: static files, no session needed.
        (r"/", PageHandler, {"path": str(WEB_DIR)}),
        (r"/web/([^/]+)", WebFileHandler, {"path": str(WEB_DIR)}),
        (r"/api/docs/?", ApiDocsHandler),
        (r"/api/docs/static/([^/]+)", ApiDocsFileHandler, {"path": api_docs_folder()}),
        (r"/api/ws/?", EventsSocket, {**deps, "hub": hub, "socket_limits": socket_limits}),
        (r"/api/reg/?", RegisterHandler, deps),
        (r"/api/login/?", LoginHandler, deps),
        (r"/api/logout/?", LogoutHandler, deps),
        (r"/api/chats/?", ChatsHandler, deps),
        (r"/api/chats/([^/]+)/?", ChatHandler, deps),
        (r"/api/chats/([^/]+)/messages/([^/]+)/?", MessageHandler, deps),
        (r"/api/chats/([^/]+)/members/?", MembersHandler, deps),
        (r"/api/chats/([^/]+)/read/?", ReadHandler, deps),
        (r"/api/chats/([^/]+)/events/?", ChatEventsHandler, deps),
        (r"/api/user/?", UserHandler, deps),
        (r"/api/user/([^/]+)/?", UserHandler, deps),
    ]
    return Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        log_function=metrics.log_request,
        websocket_ping_interval=settings.ws_ping_interval_secs,
        websocket_ping_timeout=settings.ws_ping_timeout_secs,
        websocket_max_message_size=settings.ws_hard_frame_bytes,
        connection_stats=connection_stats,
        socket_limits=socket_limits,
    )


def make_http_server(app, settings: Settings, stats: ConnectionStats | None = None) -> HTTPServer:
    """An HTTPServer for the app (an Application, or a delegate in front of one:
    then pass the app's `connection_stats`): bodies past the hard cap close the
    connection; connections are capped and slow clients cut (server.connection_limits)."""
    if stats is None:
        stats = app.settings["connection_stats"]
    return GuardedHTTPServer(
        app, max_body_size=settings.hard_body_bytes, settings=settings, stats=stats, cap=connection_cap(settings),
        max_header_size=settings.max_header_bytes,
    )


CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}


def cluster_url(url: str) -> str | None:
    """The redis-py URL of a `redis+cluster://` (or `rediss+cluster://`) one;
    None for a single server's URL."""
    for scheme, plain in CLUSTER_SCHEMES.items():
        if url.startswith(scheme):
            return plain + url[len(scheme) :]
    return None


def make_redis(url: str, settings: Settings) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """A client for one server (`redis://`, `unix://`) or a Redis Cluster
    (`redis+cluster://host:port`, any node of it).

    No per-command timeout: each request has one deadline for all its Redis
    work (storage.deadline), which costs far less CPU. Connecting is bounded.
    No retries: a command whose answer was lost is never sent twice (a 503
    on a write means "unknown"; idempotency keys make a retry safe).
    """
    common = {
        "socket_timeout": None,
        "socket_connect_timeout": settings.redis_timeout_secs,
        "decode_responses": True,
        "retry": Retry(NoBackoff(), 0),
        **_keepalive(url),
    }
    plain = cluster_url(url)
    if plain is not None:
        # Redirections after a slot moved (MOVED, ASK) are still followed.
        return WaitingRedisCluster.from_url(plain, max_connections=settings.redis_max_connections, **common)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=settings.redis_max_connections, timeout=None, **common
    )
    return redis.asyncio.Redis(connection_pool=pool)


class WaitingRedisCluster(redis.asyncio.RedisCluster):
    """A cluster client whose requests wait for a free connection, as a single
    server's BlockingConnectionPool does: redis-py's cluster pool (one per
    node) raises at once when it is full. At most `max_connections - 1`
    commands are in flight in all, which leaves a connection on every node
    for the pub/sub feed (it borrows one from its node's pool)."""

    def __init__(self, *args, max_connections: int, **kwargs):
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self._in_flight = asyncio.Semaphore(max(1, max_connections - 1))

    async def execute_command(self, *args, **kwargs):
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)

    async def mget_nonatomic(self, keys, *args):
        # A pipeline: one connection per node it touches, counted as one.
        async with self._in_flight:
            return await super().mget_nonatomic(keys, *args)

    async def execute_pipeline(self, pipe, **options):
        """Runs a pipeline of this client (storage.cluster.run_per_group,
        storage.replication), counted as one command like mget_nonatomic."""
        async with self._in_flight:
            return await pipe.execute(**options)


def _keepalive(url: str) -> dict:
    """TCP keepalive for a server reached over TCP.

    Reads without a deadline (the pub/sub connection, idle pooled ones) must
    not wait forever on a host that vanished (a crash, a network cut): the
    kernel probes an idle connection after 10 s and drops it after ~25 s of
    silence, or when sent data stays unacknowledged that long. (A frozen
    redis-server on a live host still acknowledges at the TCP level: only
    the request deadline and the feed's pings catch that.)
    """
    if url.startswith(("unix://", "/")):
        return {}
    options = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 25_000}
    return {
        "socket_keepalive": True,
        "socket_keepalive_options": {
            getattr(socket, name): value for name, value in options.items() if hasattr(socket, name)
        },
    }


def make_storage(client: redis.asyncio.Redis, settings: Settings) -> Storage:
    return Storage(client, settings)
