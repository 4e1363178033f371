"""/api/chats/{chat_id}/events: catching up on a chat from its log."""

import orjson

from .base import BaseHandler


class ChatEventsHandler(BaseHandler):
    async def get(self, raw_chat_id: str):
        """The chat's events after `since`, oldest first, each as a socket got it (members only)."""
        chat_id = self.rules.entity_id(raw_chat_id, "chat_id")
        since = self.rules.since(self.arg("since"))
        limit = self.rules.limit(self.arg("limit"))
        epoch = self.rules.epoch(self.arg("epoch"))
        page = await self.storage.log.read(self.user_id, chat_id, since, limit, epoch)
        # The logged JSON is the answer's JSON: no decoding on the way out.
        head = orjson.dumps({"seq": page.seq, "epoch": page.epoch})[:-1]
        self.write(head + b',"events":[' + ",".join(page.events).encode() + b"]}")
