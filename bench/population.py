"""The users behind the throughput lines: USERS people, each in
CHATS_PER_USER chats of MEMBERS_PER_CHAT, each chat with a history.

Spread over this many users, no line comes near a user's rate limit: a
line's requests take the users in turn, so at thousands of requests a
second each user makes a few.

The chats are drawn in CHATS_PER_USER rounds: each round shuffles the users
and cuts them into chats of MEMBERS_PER_CHAT, so each user is in exactly
one chat per round, with other people in each.
"""

import dataclasses
import random

from .seed import HISTORY_PAGE
from .seeding import seeder

USERS = 1_000
CHATS_PER_USER = 20
MEMBERS_PER_CHAT = 40
# More than a page; a longer history would only slow the seeding (a page costs
# the same however long the chat: see the history-size line).
MESSAGES_PER_CHAT = HISTORY_PAGE + 10
SHUFFLE_SEED = 13  # the same draw in every run


@dataclasses.dataclass
class Member:
    cookie: str
    chats: list[int]  # the chats the user is in


def _groups(users: list[int]) -> list[list[int]]:
    """The member lists of the chats, each drawn as the module says."""
    shuffler, groups = random.Random(SHUFFLE_SEED), []
    for _ in range(CHATS_PER_USER):
        order = shuffler.sample(users, len(users))
        groups += [order[start : start + MEMBERS_PER_CHAT] for start in range(0, len(order), MEMBERS_PER_CHAT)]
    return groups


async def seed_population(redis_url: str) -> list[Member]:
    """The users with a session each, in their chats, whose members take
    turns writing the history."""
    async with seeder(redis_url) as s:
        users = await s.register("person", USERS)
        cookies = await s.cookies(users)
        groups = _groups(users)
        chats = await s.new_chats([(owner, f"group {n}", members) for n, (owner, *members) in enumerate(groups)])
        chats_of = {user: [] for user in users}
        for chat_id, group in zip(chats, groups):
            for user in group:
                chats_of[user].append(chat_id)
        await s.send(
            (group[n % len(group)], chat_id, f"message {n} of a group chat")
            for chat_id, group in zip(chats, groups)
            for n in range(MESSAGES_PER_CHAT)
        )
        return [Member(cookie, chats_of[user]) for user, cookie in zip(users, cookies)]
