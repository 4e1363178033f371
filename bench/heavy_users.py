"""Users in very many chats, for the two latency lines about them: one
lists their LISTER_CHATS chats, the other creates chats when already in
CREATOR_CHATS. Each chat has one message of its owner, so that it has a
last message to show and sort by."""

import dataclasses

from .seeding import Seeder, seeder

LISTER_CHATS = 1_000
CREATOR_CHATS = 3_000


@dataclasses.dataclass
class HeavyUsers:
    lister_cookie: str
    creator_cookie: str


async def _user_in_chats(s: Seeder, name: str, count: int) -> str:
    """A user who owns `count` chats, each with one message; their cookie."""
    (user,) = await s.register(name, 1)
    chats = await s.new_chats([(user, f"{name}'s chat {n}", []) for n in range(1, count + 1)])
    await s.send((user, chat, "the first message of a chat") for chat in chats)
    (cookie,) = await s.cookies([user])
    return cookie


async def seed_heavy_users(redis_url: str) -> HeavyUsers:
    async with seeder(redis_url) as s:
        return HeavyUsers(
            lister_cookie=await _user_in_chats(s, "lister", LISTER_CHATS),
            creator_cookie=await _user_in_chats(s, "creator", CREATOR_CHATS),
        )
