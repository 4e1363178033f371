"""/api/chats/{chat_id}: history, sending, renaming the chat, deleting a message; one message at
/api/chats/{chat_id}/messages/{message_id}: reading, editing, deleting it."""

from .base import BaseHandler


async def send_message(
    handler, raw_chat_id: str | None, raw_content: str | None, raw_key: str | None, *, key_name="Idempotency-Key"
):
    """Checks and stores a message; (chat id, storage.messages.Sent). Shared
    by HTTP and the socket. A retry with the same idempotency key still
    counts against the sender's rate."""
    chat_id = handler.rules.entity_id(raw_chat_id, "chat_id")
    content = handler.rules.content(raw_content)
    key = handler.rules.idempotency_key(raw_key, key_name)
    await handler.storage.limits.message(handler.user_id)
    sent = await handler.storage.messages.send(handler.user_id, chat_id, content, key)
    return chat_id, sent


class ChatHandler(BaseHandler):
    async def get(self, raw_chat_id: str):
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        limit = self.rules.limit(self.arg("limit"))
        before = self.rules.cursor(self.arg("before"), "before")
        after = self.rules.cursor(self.arg("after"), "after")
        page = await self.storage.messages.page(self.user_id, chat_id, limit=limit, before=before, after=after)
        # The stored JSON is the answer's JSON: no decoding on the way out.
        # A page the byte bound cut short names the cursor that continues it.
        resume = ""
        if page.resume_id is not None:
            resume = f',"next_{"before" if after is None else "after"}":{page.resume_id}'
        self.write(_page_body(page.messages, resume))

    async def post(self, raw_chat_id: str):
        _, sent = await send_message(
            self, raw_chat_id, self.arg("content"), self.request.headers.get("Idempotency-Key")
        )
        if sent.replayed:
            self.set_header("Idempotent-Replayed", "true")
        self.reply(201, id=sent.message_id)

    async def put(self, raw_chat_id: str):
        """Rename the chat (any member)."""
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        title = self.rules.title(self.arg("title"))
        await self.storage.chats.rename(self.user_id, chat_id, title)
        self.reply(200)

    async def delete(self, raw_chat_id: str):
        """Delete one of the caller's own messages."""
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        message_id = self.rules.entity_id(self.arg("id"), "id")
        await self.storage.messages.delete(self.user_id, chat_id, message_id)
        self.reply(200)


class MessageHandler(BaseHandler):
    """/api/chats/{chat_id}/messages/{message_id}: one message."""

    def _ids(self, raw_chat_id: str, raw_message_id: str) -> tuple[int, int]:
        return self.rules.entity_id(raw_chat_id, "chat_id"), self.rules.entity_id(raw_message_id, "message_id")

    async def get(self, raw_chat_id: str, raw_message_id: str):
        """Read one message (any member)."""
        chat_id, message_id = self._ids(raw_chat_id, raw_message_id)
        message = await self.storage.messages.get(self.user_id, chat_id, message_id)
        self.write('{"message":' + message + "}")

    async def put(self, raw_chat_id: str, raw_message_id: str):
        """Edit one of the caller's own messages; counts against their message rate."""
        chat_id, message_id = self._ids(raw_chat_id, raw_message_id)
        content = self.rules.content(self.arg("content"))
        await self.storage.limits.message(self.user_id)
        await self.storage.messages.edit(self.user_id, chat_id, message_id, content)
        self.reply(200)

    async def delete(self, raw_chat_id: str, raw_message_id: str):
        """Delete one of the caller's own messages."""
        chat_id, message_id = self._ids(raw_chat_id, raw_message_id)
        await self.storage.messages.delete(self.user_id, chat_id, message_id)
        self.reply(200)


def _page_body(messages: list[str] | list[bytes], resume: str) -> bytes:
    """A page's answer as one bytes object, made in one join: a page may be
    1 MB, and each `+` of a piece was one more copy of it (profiled: a third
    of a large page's CPU). Tornado writes a single chunk without copying it.
    Messages from Redis are bytes; from the read cache, str (encoded once here)."""
    text = bool(messages) and isinstance(messages[0], str)
    comma, parts = ("," if text else b","), ['{"messages":[' if text else b'{"messages":[']
    for message in messages:
        parts += (message, comma)
    if messages:
        parts.pop()  # the last comma
    end = f"]{resume}}}"
    if text:
        parts.append(end)
        return "".join(parts).encode()
    parts.append(end.encode())
    return b"".join(parts)
