"""/api/chats/{chat_id}/members: who is in a chat, adding and removing people."""

from storage import NotFound

from .base import BaseHandler
from .validation import BadInput


class MembersHandler(BaseHandler):
    async def get(self, raw_chat_id: str):
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        owner_id, member_ids = await self.storage.chats.members(self.user_id, chat_id)
        names = await self.storage.users.names(member_ids)
        online = dict(zip(member_ids, await self.storage.presence.online(member_ids)))
        members = [{"id": uid, "name": names[uid], "online": online[uid]} for uid in member_ids if uid in names]
        self.write_json({"owner_id": owner_id, "members": members})

    async def post(self, raw_chat_id: str):
        """Any member adds a user, named by `user_id` or `name`."""
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        new_member_id = await self._existing_user_id()
        await self.storage.chats.add_member(self.user_id, chat_id, new_member_id)
        self.reply(201)

    async def delete(self, raw_chat_id: str):
        """The owner removes a member (a member removing themself leaves)."""
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        member_id = self.rules.entity_id(self.arg("user_id"), "user_id")
        await self.storage.chats.remove_member(self.user_id, chat_id, member_id)
        self.reply(200)

    async def _existing_user_id(self) -> int | None:
        """The user named by the request, or None if there is no such user."""
        if self.arg("user_id") is not None:
            user_id = self.rules.entity_id(self.arg("user_id"), "user_id")
            return user_id if await self.storage.users.exists(user_id) else None
        if self.arg("name") is None:
            raise BadInput("user_id or name is required")
        name = self.rules.name(self.arg("name"))
        try:
            return (await self.storage.users.find_by_name(name))["id"]
        except NotFound:
            return None
