"""The only code that talks to Redis. It knows nothing of HTTP.

Operations on a given chat, message or user raise `NotFound`, `Forbidden`,
`Conflict` or `NameTaken` (see `errors`); they never return None for a
missing object.
"""

from . import cluster, migrations
from .chats import ChatStore
from .errors import (
    BeyondNewest,
    Busy,
    Conflict,
    Forbidden,
    Gone,
    KeyReused,
    NameTaken,
    NotFound,
    RateLimited,
    StorageError,
    Unavailable,
)
from .chat_log import ChatLog
from .events import EventFeed
from .fair_share import FairShare
from .messages import MessageStore
from .passwords import PasswordHasher
from .presence import PresenceStore
from .rate_limits import RateLimits
from .read_cache import ReadCache
from .replication import ReplicaWait
from .scripts import Scripts
from .session_cache import SessionCache
from .socket_counts import SocketCounts
from .users import UserStore

__all__ = [
    "Storage",
    "StorageError",
    "NotFound",
    "Forbidden",
    "Conflict",
    "NameTaken",
    "Unavailable",
    "RateLimited",
    "Busy",
    "KeyReused",
    "Gone",
    "BeyondNewest",
]


class Storage:
    """All stores over one Redis client, and this process's event feed."""

    def __init__(self, redis, settings):
        """`settings`: the service's Settings (any object with the same fields)."""
        self._redis = redis
        self.replicas = ReplicaWait(redis, settings.redis_wait_replicas, timeout_secs=settings.redis_timeout_secs)
        self._scripts = scripts = Scripts(redis, chat_log_events=settings.chat_log_events, replicas=self.replicas)
        self.feed = EventFeed(redis)
        self.passwords = PasswordHasher(
            cost=settings.bcrypt_cost, threads=settings.bcrypt_threads, queue=settings.bcrypt_queue
        )
        self.fair_share = FairShare(per_user=settings.requests_per_user)
        self.limits = RateLimits(redis, scripts, settings)
        self.read_cache = cache = ReadCache(
            self.feed, max_bytes=settings.read_cache_mb * 2**20, page_messages=settings.history_default_limit
        )
        self.chats = ChatStore(redis, scripts, cache)
        self.messages = MessageStore(
            scripts, cache, idempotency_ttl_secs=settings.idempotency_ttl_secs,
            page_max_bytes=settings.history_page_max_bytes, reads_in_flight=settings.history_reads_in_flight,
        )  # fmt: skip
        self.log = ChatLog(redis, scripts)
        self.presence = PresenceStore(redis, scripts)
        self.sockets = SocketCounts(redis, scripts)
        self.users = UserStore(
            redis,
            scripts,
            self.chats,
            SessionCache(self.feed),
            self.passwords,
            token_ttl_secs=settings.token_ttl_secs,
            token_idle_secs=settings.token_idle_secs,
        )

    async def prepare(self) -> None:
        """Loads the scripts ahead of the first requests (see Scripts.load), and
        on a Redis 7 cluster publishes chat events to shard channels."""
        await self._scripts.load()
        if await cluster.supports_shard_channels(self._redis):
            self._scripts.publish_command = "SPUBLISH"
            self.feed.use_shard_channels()

    async def upgrade(self) -> int:
        """Brings older data to this code's layout (see migrations); returns the version it was in."""
        found = await migrations.upgrade(self._redis, self._scripts)
        if found < migrations.SCHEMA_VERSION:
            self.read_cache.drop_all()  # nothing announced what the upgrade rewrote
        return found

    async def ping(self) -> None:
        """Raises a redis error unless Redis answers (for health checks)."""
        await cluster.ping(self._redis)

    def start(self) -> None:
        """Starts the event feed (inside the running loop); until then no session is cached."""
        self.feed.start()

    async def stop(self) -> None:
        self.read_cache.stop()
        await self.feed.stop()
        self.passwords.close()
