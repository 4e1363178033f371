"""What the seeding modules share: one connection to the benchmark's Redis
through the storage layer, and the bulk writes that would take too long one
request at a time, made through the service's own scripts, pipelined.

Only seeding takes these shortcuts (a low bcrypt cost, no registration
limit, sessions made directly): the server under test runs at its defaults.
"""

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator, Awaitable, Iterable

from server.app import make_redis, make_storage
from server.settings import Settings
from storage import keys
from storage.records import message_json_tail, new_chat_summary, new_epoch, utc_now_iso
from storage.scripts import Scripts

# bcrypt's lowest cost: thousands of registrations take seconds rather than
# the better part of an hour at the service's cost of 12. These users never
# log in (their sessions are made directly), so their hash is never checked.
FAST_BCRYPT_COST = 4
PASSWORD = "bench password"
IN_FLIGHT = 200  # storage calls at once
BATCH = 2000  # script calls per pipeline


def cookie(user_id: int, token: str) -> str:
    """The Cookie header of a session."""
    return f"user_id={user_id}; token={token}"


def names(prefix: str, count: int) -> list[str]:
    """The names of `count` seeded users: prefix1, prefix2, ..."""
    return [f"{prefix}{n}" for n in range(1, count + 1)]


async def batched(calls: Iterable[Awaitable]) -> list:
    """Awaits the calls IN_FLIGHT at a time; their results in order."""
    calls, results = list(calls), []
    for start in range(0, len(calls), IN_FLIGHT):
        results += await asyncio.gather(*calls[start : start + IN_FLIGHT])
    return results


@dataclasses.dataclass
class Seeder:
    """The storage layer and the scripts on one Redis client."""

    client: object
    storage: object
    scripts: Scripts

    async def register(self, prefix: str, count: int) -> list[int]:
        """Registers the users of `names(prefix, count)`; their ids."""
        return await batched(
            self.storage.users.register(name, f"{name}@example.org", PASSWORD) for name in names(prefix, count)
        )

    async def cookies(self, user_ids: list[int]) -> list[str]:
        """A new session for each user, as its Cookie header."""
        tokens = await batched(self.storage.users.create_session(user) for user in user_ids)
        return [cookie(user, token) for user, token in zip(user_ids, tokens)]

    async def new_chats(self, chats: list[tuple[int, str, list[int]]]) -> list[int]:
        """A chat per (owner, title, members); their ids. Written as the
        storage layer writes them (the users' chat indexes first, then
        create_chat.lua, then add_member.lua per member) but pipelined:
        through the storage layer, each creation checks the title against
        the owner's other chats (3,000 took minutes) and each member added
        costs several round trips. Anything else a later layout keeps is
        left to `upgrade`."""
        last = await self.client.incrby(keys.CHAT_ID_SEQ, len(chats))
        chat_ids = list(range(last - len(chats) + 1, last + 1))
        indexes = {}
        for chat_id, (owner, _, members) in zip(chat_ids, chats):
            for user in (owner, *members):
                indexes.setdefault(user, []).append(chat_id)
        pipe = self.client.pipeline(transaction=False)
        for user, user_chats in indexes.items():
            pipe.sadd(keys.user_chats_key(user), *user_chats)
        await pipe.execute()
        await self._run(call for chat_id, chat in zip(chat_ids, chats) for call in self._chat_calls(chat_id, *chat))
        return chat_ids

    def _chat_calls(self, chat_id: int, owner: int, title: str, members: list[int]):
        """The script calls that create one chat and add its members."""
        created_at, epoch = utc_now_iso(), new_epoch()
        summary = new_chat_summary(chat_id, title, owner, created_at, epoch)
        create_args = [owner, title, created_at, summary, chat_id, epoch]
        yield self.scripts.create_chat, keys.chat_keys(chat_id, owner), create_args
        for member in members:
            key_names, context = self.scripts.chat_context(chat_id, member_id=member)
            # The member exists ("1") and accepts adds from the owner (the last "1").
            args = [owner, *context, member, "1", keys.user_events_channel(member), "1"]
            yield self.scripts.add_member, key_names, args

    async def send(self, sends: Iterable[tuple[int, int, str]]) -> None:
        """Each (sender, chat, content) through the real send script (numbered,
        logged and published as any send), pipelined."""
        await self._run(self._send_call(*send) for send in sends)

    def _send_call(self, user_id: int, chat_id: int, content: str):
        """The script call of one send."""
        key_names, context = self.scripts.chat_context(chat_id, member_id=user_id)
        args = [user_id, *context, message_json_tail(content), chat_id, utc_now_iso()]
        return self.scripts.send_message, key_names, args

    async def _run(self, calls: Iterable[tuple[object, list[str], list]]) -> None:
        """Each (script, keys, args), BATCH to a pipeline; raises unless every
        one succeeded (create_chat.lua answers 1, a chat script 'ok' first)."""
        calls = iter(calls)  # lazily: a large history is a million sends
        while batch := list(itertools.islice(calls, BATCH)):
            pipe = self.client.pipeline(transaction=False)
            for script, key_names, args in batch:
                await script(keys=key_names, args=args, client=pipe)
            for reply in await pipe.execute():
                if reply != 1 and not (isinstance(reply, list) and reply[0] == "ok"):
                    raise RuntimeError(f"a seeding script failed: {reply}")


@contextlib.asynccontextmanager
async def seeder(redis_url: str, *, bcrypt_cost: int = FAST_BCRYPT_COST) -> AsyncIterator[Seeder]:
    """A Seeder on the Redis at redis_url, closed on the way out."""
    # Its registrations run IN_FLIGHT at once: the bcrypt queue must hold them all.
    settings = Settings(bcrypt_cost=bcrypt_cost, bcrypt_queue=IN_FLIGHT)
    client = make_redis(redis_url, settings)
    storage = make_storage(client, settings)
    try:
        yield Seeder(client, storage, Scripts(client, chat_log_events=settings.chat_log_events))
    finally:
        storage.passwords.close()
        await client.aclose()


async def upgrade(redis_url: str) -> None:
    """Brings everything seeded to this code's layout with the service's own
    schema upgrade, as a server does at start. Seeding leaves `schema:version`
    unset, like data from before the first version, so every step runs: an
    index that a later layout added and the bulk writes above lack is filled
    in here."""
    async with seeder(redis_url) as s:
        await s.storage.upgrade()
