"""Realistic data for the benchmark, written through the storage layer."""

import dataclasses

from server.app import make_redis, make_storage
from server.settings import Settings
from storage import keys
from storage.records import message_json_tail, utc_now_iso
from storage.scripts import Scripts

CHATS_PER_READER = 20
HISTORY_PAGE = 50
BATCH = 2000


@dataclasses.dataclass
class Seeded:
    reader_cookie: str  # a user in CHATS_PER_READER chats
    page_chat: int  # a chat with more than HISTORY_PAGE messages
    send_chat: int  # where the send benchmark posts
    small_chat: int  # history sizes for the latency comparison
    large_chat: int
    login_body: str  # a registered user's credentials, form-encoded
    bytes_per_message: float  # Redis memory per message beyond its content
    redis_version: str


def cookie(user_id: int, token: str) -> str:
    return f"user_id={user_id}; token={token}"


async def _fill(client, user_id: int, chat_id: int, count: int, content: str) -> None:
    """Sends `count` messages through the real send script (numbered, logged
    and published as any send), pipelined in batches."""
    scripts = Scripts(client, chat_log_events=Settings().chat_log_events)
    key_names, context = scripts.chat_context(chat_id, member_id=user_id)
    for start in range(0, count, BATCH):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(BATCH, count - start)):
            args = [user_id, *context, message_json_tail(content), chat_id, utc_now_iso()]
            await scripts.send_message(keys=key_names, args=args, client=pipe)
        await pipe.execute()


async def _memory_per_message(client, user_id: int, chat_id: int, samples: int) -> float:
    """Bytes the message sorted set and the chat's event log hold per message,
    beyond the message text (the log keeps about the last --chat-log-events)."""
    content = "m" * 100
    await _fill(client, user_id, chat_id, samples, content)
    size = 0
    for key in (keys.chat_messages_key(chat_id), keys.chat_log_key(chat_id)):
        size += await client.memory_usage(key, samples=0)  # every element
    return size / samples - len(content)


async def seed(redis_url: str, *, large_history: int, memory_samples: int, password: str) -> Seeded:
    settings = Settings()
    client = make_redis(redis_url, settings)
    storage = make_storage(client, settings)
    try:
        reader = await storage.users.register("bench_reader", "reader@example.org", password)
        writer = await storage.users.register("bench_writer", "writer@example.org", password)
        token = await storage.users.create_session(reader)
        chats = []
        for index in range(CHATS_PER_READER):
            chat_id = await storage.chats.create(writer, f"chat {index}")
            await storage.chats.add_member(writer, chat_id, reader)
            await _fill(client, writer, chat_id, 3, f"hello from chat {index}")
            chats.append(chat_id)
        await _fill(client, writer, chats[0], HISTORY_PAGE * 2, "a typical chat message, not too long")
        small = await storage.chats.create(reader, "history 1k")
        large = await storage.chats.create(reader, "history large")
        await _fill(client, reader, small, 1000, "x" * 60)
        await _fill(client, reader, large, large_history, "x" * 60)
        assert await client.zcard(keys.chat_messages_key(large)) == large_history
        probe = await storage.chats.create(writer, "memory probe")
        per_message = await _memory_per_message(client, writer, probe, memory_samples)
        return Seeded(
            reader_cookie=cookie(reader, token),
            page_chat=chats[0],
            send_chat=chats[1],
            small_chat=small,
            large_chat=large,
            login_body=f"name=bench_writer&password={password}",
            bytes_per_message=per_message,
            redis_version=(await client.info("server"))["redis_version"],
        )
    finally:
        await client.aclose()
