"""Chats with many members, for the send-latency and live-delivery lines,
written through the storage layer like the rest of the seed."""

import asyncio
import dataclasses
from collections.abc import Awaitable, Iterable

from server.app import make_redis, make_storage
from server.settings import Settings

from .seed import cookie

# bcrypt's lowest cost: 10,000 registrations take seconds rather than the
# better part of an hour at the service's cost of 12. These users never log
# in (their sessions are made directly), so the cost of their hash is never paid again.
CROWD_BCRYPT_COST = 4
IN_FLIGHT = 200  # storage calls at once while seeding
PASSWORD = "crowd password"


@dataclasses.dataclass
class Crowd:
    sender_cookie: str  # the owner of every chat below
    chats_by_size: dict[int, int]  # member count -> chat id, smallest first
    live_chat: int
    live_cookies: list[str]  # one per member of live_chat, the sender's first


async def _batched(calls: Iterable[Awaitable]) -> list:
    """Awaits the calls IN_FLIGHT at a time; their results in order."""
    calls, results = list(calls), []
    for start in range(0, len(calls), IN_FLIGHT):
        results += await asyncio.gather(*calls[start : start + IN_FLIGHT])
    return results


async def _register(storage, count: int) -> list[int]:
    """Registers `count` users named crowd1, crowd2, ...; their ids."""
    return await _batched(
        storage.users.register(f"crowd{n}", f"crowd{n}@example.org", PASSWORD) for n in range(1, count + 1)
    )


async def _chat_of(storage, owner: int, title: str, members: list[int]) -> int:
    """A new chat of the owner with `members` added by the owner; its id."""
    chat_id = await storage.chats.create(owner, title)
    await _batched(storage.chats.add_member(owner, chat_id, member) for member in members)
    return chat_id


async def seed_crowd(redis_url: str, *, sizes: list[int], live_members: int) -> Crowd:
    """One chat per size in `sizes` (members, the owner included) and one of
    `live_members` members with a session each, all owned by one sender."""
    settings = Settings(bcrypt_cost=CROWD_BCRYPT_COST)
    client = make_redis(redis_url, settings)
    storage = make_storage(client, settings)
    try:
        sender = await storage.users.register("crowd_sender", "crowd_sender@example.org", PASSWORD)
        # The same users fill every chat: the members of a small chat are in the larger ones too.
        others = await _register(storage, max(*sizes, live_members) - 1)
        chats = {}
        for size in sorted(sizes):
            chats[size] = await _chat_of(storage, sender, f"{size} members", others[: size - 1])
        live_users = [sender, *others[: live_members - 1]]
        live_chat = await _chat_of(storage, sender, "live delivery", live_users[1:])
        tokens = await _batched(storage.users.create_session(user) for user in live_users)
        return Crowd(
            sender_cookie=cookie(sender, tokens[0]),
            chats_by_size=chats,
            live_chat=live_chat,
            live_cookies=[cookie(user, token) for user, token in zip(live_users, tokens)],
        )
    finally:
        storage.passwords.close()
        await client.aclose()
