"""The only code that talks to Redis. It knows nothing of HTTP.

Operations on a given chat, message or user raise `NotFound`, `Forbidden`,
`Conflict` or `NameTaken` (see `errors`); they never return None for a
missing object.
"""

from .chats import ChatStore
from .errors import Conflict, Forbidden, NameTaken, NotFound, StorageError, Unavailable
from .events import EventFeed
from .messages import MessageStore
from .passwords import PasswordHasher
from .scripts import Scripts
from .session_cache import SessionCache
from .users import UserStore

__all__ = ["Storage", "StorageError", "NotFound", "Forbidden", "Conflict", "NameTaken", "Unavailable"]


class Storage:
    """All stores over one Redis client, and this process's event feed."""

    def __init__(self, redis, *, bcrypt_cost: int, bcrypt_threads: int, token_ttl_secs: int):
        scripts = Scripts(redis)
        self.feed = EventFeed(redis)
        self.passwords = PasswordHasher(cost=bcrypt_cost, threads=bcrypt_threads)
        self.chats = ChatStore(redis, scripts)
        self.messages = MessageStore(scripts)
        self.users = UserStore(
            redis,
            scripts,
            self.chats,
            SessionCache(self.feed),
            self.passwords,
            token_ttl_secs=token_ttl_secs,
        )

    def start(self) -> None:
        """Starts the event feed (inside the running loop); until then no session is cached."""
        self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()
        self.passwords.close()
