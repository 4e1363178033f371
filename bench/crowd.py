"""Chats with many members, for the send-latency and live-delivery lines.

With rate limits on (a burst of 30 messages, then 5 a second, per user),
no user sends more than a few of the lines' messages: the sends of each
chat size rotate over SENDERS of its members, and each live socket sends
a share of the burst.
"""

import dataclasses

from .seeding import seeder

SENDERS = 100  # users taking turns at each chat size's sends


@dataclasses.dataclass
class Crowd:
    # chat size (members) -> (chat id, a member's cookie), one per sender;
    # size 1 is one chat of its own per sender.
    senders_by_size: dict[int, list[tuple[int, str]]]
    live_chat: int
    live_cookies: list[str]  # one per member of live_chat


async def seed_crowd(redis_url: str, *, sizes: list[int], live_members: int) -> Crowd:
    """One chat per size in `sizes` (members, the owner included) and one of
    `live_members` members, all owned by one user, with sessions for the
    senders and the live members."""
    async with seeder(redis_url) as s:
        # The same users fill every chat: the members of a small chat are in the larger ones too.
        users = await s.register("crowd", max(*sizes, live_members, SENDERS))
        owner, others = users[0], users[1:]
        with_sessions = users[: max(live_members, SENDERS)]
        cookies = await s.cookies(with_sessions)
        senders_by_size = {}
        for size in sorted(sizes):
            if size == 1:
                chats = await s.new_chats([(user, "alone", []) for user in with_sessions[:SENDERS]])
            else:
                (chat,) = await s.new_chats([(owner, f"{size} members", others[: size - 1])])
                chats = [chat] * min(size, SENDERS)
            senders_by_size[size] = list(zip(chats, cookies))
        (live_chat,) = await s.new_chats([(owner, "live delivery", with_sessions[1:live_members])])
        return Crowd(senders_by_size, live_chat, cookies[:live_members])
