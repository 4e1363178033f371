"""The application factory: routes, and the HTTP server that carries them."""

import socket

import redis.asyncio
from tornado.httpserver import HTTPServer
from tornado.web import Application

from handlers.auth import LoginHandler, LogoutHandler, RegisterHandler
from handlers.base import NotFoundHandler
from handlers.chats import ChatsHandler
from handlers.live import EventsSocket
from handlers.members import MembersHandler
from handlers.messages import ChatHandler
from handlers.openapi import OpenApiHandler
from handlers.ops import HealthHandler, MetricsHandler
from handlers.users import UserHandler
from handlers.validation import Rules
from storage import Storage

from .hub import Hub
from .metrics import Metrics
from .settings import Settings


def make_app(settings: Settings, storage: Storage, hub: Hub) -> Application:
    """The Tornado application serving the whole API over one storage."""
    deps = {"storage": storage, "settings": settings, "rules": Rules(settings)}
    metrics = Metrics(hub, NotFoundHandler)
    routes = [
        (r"/healthz/?", HealthHandler, deps),
        (r"/metrics/?", MetricsHandler, {**deps, "metrics": metrics}),
        (r"/api/openapi\.json/?", OpenApiHandler, deps),
        (r"/api/ws/?", EventsSocket, {**deps, "hub": hub}),
        (r"/api/reg/?", RegisterHandler, deps),
        (r"/api/login/?", LoginHandler, deps),
        (r"/api/logout/?", LogoutHandler, deps),
        (r"/api/chats/?", ChatsHandler, deps),
        (r"/api/chats/([^/]+)/?", ChatHandler, deps),
        (r"/api/chats/([^/]+)/members/?", MembersHandler, deps),
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
    )


def make_http_server(app: Application, settings: Settings) -> HTTPServer:
    """An HTTPServer for the app; bodies past the hard cap close the connection."""
    return HTTPServer(app, max_body_size=settings.hard_body_bytes, idle_connection_timeout=300)


def make_redis(url: str, settings: Settings) -> redis.asyncio.Redis:
    """A client whose pool waits rather than failing when busy.

    No per-command timeout: each request has one deadline for all its Redis
    work (storage.deadline), which costs far less CPU. Connecting is bounded.
    """
    tcp = {}
    if url.startswith(("redis://", "rediss://")):
        # Reads without a deadline (the pub/sub connection, idle pooled ones)
        # must not wait forever on a host that vanished (a crash, a network
        # cut): the kernel probes an idle connection after 10 s and drops it
        # after ~25 s of silence, or when sent data stays unacknowledged that
        # long. (A frozen redis-server on a live host still acknowledges at the
        # TCP level: only the request deadline and the feed's pings catch that.)
        options = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 25_000}
        tcp = {
            "socket_keepalive": True,
            "socket_keepalive_options": {
                getattr(socket, name): value for name, value in options.items() if hasattr(socket, name)
            },
        }
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=None,
        socket_timeout=None,
        socket_connect_timeout=settings.redis_timeout_secs,
        decode_responses=True,
        **tcp,
    )
    return redis.asyncio.Redis(connection_pool=pool)


def make_storage(client: redis.asyncio.Redis, settings: Settings) -> Storage:
    return Storage(client, settings)
