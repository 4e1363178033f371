"""/api/chats/{chat_id}/read: moving the caller's read marker in a chat."""

from .base import BaseHandler


class ReadHandler(BaseHandler):
    async def post(self, raw_chat_id: str):
        """Marks the chat read up to `message_id` (forward only; the reader's sockets get a `read` event)."""
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        message_id = self.rules.entity_id(self.arg("message_id"), "message_id")
        await self.storage.chats.mark_read(self.user_id, chat_id, message_id)
        self.reply(200)
