"""The accounts and chats the attacks use: written through the storage layer
before the server starts (as the benchmark seeds), except the large page,
which is sent through the API so that whatever bounds the API puts on a
message hold for it."""

import asyncio
import dataclasses
import urllib.parse

from ..seeding import PASSWORD, seeder
from .http import Server, exchange, request_bytes

LOGIN_COST = 12  # the service's default bcrypt cost: the login attack pays what a real login pays
PAGE_MESSAGES = 300
# The largest content first: what the API refuses, the next one replaces.
PAGE_CONTENTS = ["\x01" * 4000, "\u00e9" * 4000, "a" * 4000]


@dataclasses.dataclass
class Seeded:
    victim_cookie: str
    attacker_cookie: str
    cookies: list[str]
    login_names: list[str]
    stranger_name: str
    big_chat: int
    fanout_chat: int
    large_chat: int | None


async def seed(redis_url: str, *, accounts: int, large_history: int) -> Seeded:
    async with seeder(redis_url) as s:
        victim, attacker = await s.register("victim", 1) + await s.register("attacker", 1)
        others = await s.register("helper", accounts)
        (victim_cookie, attacker_cookie, *cookies) = await s.cookies([victim, attacker, *others])
        victim_chats = await s.new_chats([(victim, f"victim's chat {n}", []) for n in range(5)])
        await s.send((victim, chat, f"message {n}") for chat in victim_chats for n in range(20))
        big_chat, fanout_chat = await s.new_chats([(attacker, "big page", others), (attacker, "fan-out", others)])
        large_chat = None
        if large_history:
            (large_chat,) = await s.new_chats([(attacker, "long history", [])])
            await s.send((attacker, large_chat, f"old message {n}") for n in range(large_history))
    async with seeder(redis_url, bcrypt_cost=LOGIN_COST) as s:
        await s.register("login", 10)
        await s.register("stranger", 1)
    return Seeded(victim_cookie, attacker_cookie, cookies, [f"login{n}" for n in range(1, 11)], "stranger1",
                  big_chat, fanout_chat, large_chat)  # fmt: skip


async def fill_big_page(server: Server, seeded: Seeded) -> str:
    """PAGE_MESSAGES of the largest content the API stores, sent by the
    members in turn (each within their burst); which content it was."""
    senders = [seeded.attacker_cookie, *seeded.cookies]
    for content in PAGE_CONTENTS:
        body = urllib.parse.urlencode({"content": content}).encode()
        first = await exchange(server, "127.0.0.3", request_bytes("POST", f"/api/chats/{seeded.big_chat}",
                                                                    cookie=senders[0], body=body))  # fmt: skip
        if first.status == 201:
            break
    else:
        raise RuntimeError("the API refused every content of the big page")
    for n in range(1, PAGE_MESSAGES):
        raw = request_bytes("POST", f"/api/chats/{seeded.big_chat}", cookie=senders[n % len(senders)], body=body)
        answer = await exchange(server, "127.0.0.3", raw, timeout=30)
        while answer.status == 429:  # few senders (--accounts): wait for the rate limit
            await asyncio.sleep(1)
            answer = await exchange(server, "127.0.0.3", raw, timeout=30)
        if answer.status != 201:
            raise RuntimeError(f"a message of the big page got {answer.status}: {answer.body[:200]!r}")
    return f"{PAGE_MESSAGES} × {len(content)} × {content[0]!r}"


PASSWORD_OF_SEEDED = PASSWORD
