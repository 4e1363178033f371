"""/api/chats: the caller's chats, creating one, leaving one."""

from .base import BaseHandler


class ChatsHandler(BaseHandler):
    async def get(self):
        # The list is JSON already (often from this process's read cache).
        self.write(b'{"chats":' + await self.storage.chats.list_json(self.user_id) + b"}")

    async def post(self):
        title = self.rules.title(self.arg("title"))
        chat_id = await self.storage.chats.create(self.user_id, title)
        self.set_header("Location", f"/api/chats/{chat_id}")
        self.reply(201, id=chat_id)

    async def delete(self):
        """Leave a chat (the last member out deletes it)."""
        chat_id = self.rules.entity_id(self.arg("chat_id"), "chat_id")
        await self.storage.chats.remove_member(self.user_id, chat_id, self.user_id)
        self.reply(200)
