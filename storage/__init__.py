"""The only code that talks to Redis. It knows nothing of HTTP.

Operations on a given chat, message or user raise `NotFound`, `Forbidden`,
`Conflict` or `NameTaken` (see `errors`); they never return None for a
missing object.
"""

from . import cluster
from .chats import ChatStore
from .errors import (
    Conflict,
    Forbidden,
    KeyReused,
    NameTaken,
    NotFound,
    RateLimited,
    StorageError,
    Unavailable,
)
from .events import EventFeed
from .messages import MessageStore
from .passwords import PasswordHasher
from .rate_limits import RateLimits
from .scripts import Scripts
from .session_cache import SessionCache
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
    "KeyReused",
]


class Storage:
    """All stores over one Redis client, and this process's event feed."""

    def __init__(self, redis, settings):
        """`settings`: the service's Settings (any object with the same fields)."""
        self._redis = redis
        self._scripts = scripts = Scripts(redis)
        self.feed = EventFeed(redis)
        self.passwords = PasswordHasher(cost=settings.bcrypt_cost, threads=settings.bcrypt_threads)
        self.limits = RateLimits(redis, scripts, settings)
        self.chats = ChatStore(redis, scripts)
        self.messages = MessageStore(scripts, idempotency_ttl_secs=settings.idempotency_ttl_secs)
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
        """Loads the scripts ahead of the first requests (see Scripts.load)."""
        await self._scripts.load()

    async def ping(self) -> None:
        """Raises a redis error unless Redis answers (for health checks)."""
        await cluster.ping(self._redis)

    def start(self) -> None:
        """Starts the event feed (inside the running loop); until then no session is cached."""
        self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()
        self.passwords.close()
