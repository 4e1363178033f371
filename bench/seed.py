"""The data of the history-size, memory and login lines, and what the
machine line reports of Redis."""

import dataclasses
import urllib.parse

from server.settings import Settings
from storage import keys

from .logins import CONCURRENT_LOGINS
from .seeding import PASSWORD, Seeder, names, seeder

HISTORY_PAGE = 50
SMALL_HISTORY = 1_000


@dataclasses.dataclass
class Seeded:
    reader_cookie: str  # the owner of the two history chats
    small_chat: int  # SMALL_HISTORY messages
    large_chat: int  # --large-history messages
    login_bodies: list[str]  # credentials of users registered at the service's bcrypt cost, form-encoded
    bytes_per_message: float  # Redis memory per message beyond its content
    redis_version: str
    appendfsync: str  # the durability Redis runs with, as it reports it


async def _memory_per_message(s: Seeder, user_id: int, chat_id: int, samples: int) -> float:
    """Bytes the message sorted set and the chat's event log hold per message,
    beyond the message text (the log keeps about the last --chat-log-events)."""
    content = "m" * 100
    await s.send((user_id, chat_id, content) for _ in range(samples))
    size = 0
    for key in (keys.chat_messages_key(chat_id), keys.chat_log_key(chat_id)):
        size += await s.client.memory_usage(key, samples=0)  # every element
    return size / samples - len(content)


async def seed(redis_url: str, *, large_history: int, memory_samples: int) -> Seeded:
    """The reader's history chats and memory probe, and the login users."""
    # The service's own bcrypt cost: the logins line logs these users in.
    async with seeder(redis_url, bcrypt_cost=Settings().bcrypt_cost) as s:
        (reader,) = await s.register("reader", 1)
        await s.register("login", CONCURRENT_LOGINS)
        (reader_cookie,) = await s.cookies([reader])
        titles = ("history small", "history large", "memory probe")
        small, large, probe = await s.new_chats([(reader, title, []) for title in titles])
        await s.send((reader, small, "x" * 60) for _ in range(SMALL_HISTORY))
        await s.send((reader, large, "x" * 60) for _ in range(large_history))
        assert await s.client.zcard(keys.chat_messages_key(large)) == large_history
        return Seeded(
            reader_cookie=reader_cookie,
            small_chat=small,
            large_chat=large,
            login_bodies=[urllib.parse.urlencode({"name": name, "password": PASSWORD})
                          for name in names("login", CONCURRENT_LOGINS)],  # fmt: skip
            bytes_per_message=await _memory_per_message(s, reader, probe, memory_samples),
            redis_version=(await s.client.info("server"))["redis_version"],
            appendfsync=(await s.client.config_get("appendfsync"))["appendfsync"],
        )
