"""The only code that talks to Redis. It knows nothing of HTTP.

Operations on a given chat, message or user raise `NotFound`, `Forbidden`,
`Conflict` or `NameTaken` (see `errors`); they never return None for a
missing object.
"""

from .chats import ChatStore
from .errors import Conflict, Forbidden, NameTaken, NotFound, StorageError
from .messages import MessageStore
from .scripts import Scripts
from .users import UserStore

__all__ = ["Storage", "StorageError", "NotFound", "Forbidden", "Conflict", "NameTaken"]


class Storage:
    """All stores over one Redis client."""

    def __init__(self, redis, *, bcrypt_cost: int, token_ttl_secs: int):
        self.redis = redis
        scripts = Scripts(redis)
        self.chats = ChatStore(redis, scripts)
        self.messages = MessageStore(scripts)
        self.users = UserStore(
            redis, scripts, self.chats, bcrypt_cost=bcrypt_cost, token_ttl_secs=token_ttl_secs
        )
