"""/api/user[/{user_id}]: looking people up, registering, editing and deleting accounts."""

from storage import Forbidden

from .auth import RegistrationMixin
from .base import BaseHandler
from .validation import BadInput


class UserHandler(RegistrationMixin, BaseHandler):
    public_methods = ("POST",)

    async def get(self, raw_user_id: str | None = None):
        """A user by id, or by `?name=` (then the path id is ignored)."""
        if self.arg("name") is not None:
            user = await self.storage.users.find_by_name(self.rules.name(self.arg("name")))
        else:
            user = await self.storage.users.get(self.rules.entity_id(raw_user_id, "user_id"))
        if user["id"] != self.user_id:
            del user["email"]  # shown to its owner only
        self.write_json({"user": user})

    async def post(self, _ignored: str | None = None):
        await self.register()

    async def put(self, raw_user_id: str | None = None):
        """Change the caller's own name and/or email."""
        user_id = self.rules.entity_id(raw_user_id, "user_id")
        name, email = self.arg("name"), self.arg("email")
        if name is None and email is None:
            raise BadInput("name or email is required")
        name = None if name is None else self.rules.name(name)
        email = None if email is None else self.rules.email(email)
        await self._check_own_account(user_id)
        await self.storage.users.update(user_id, name=name, email=email)
        self.reply(200)

    async def delete(self, raw_user_id: str | None = None):
        """Delete the caller's own account; ends all its sessions."""
        user_id = self.rules.entity_id(raw_user_id, "user_id")
        await self._check_own_account(user_id)
        await self.storage.users.delete(user_id)
        self.expire_session_cookies()
        self.reply(200)

    async def _check_own_account(self, user_id: int) -> None:
        """404 for an unknown user, 403 for anyone else's account."""
        if user_id != self.user_id:
            await self.storage.users.get(user_id)  # raises NotFound
            raise Forbidden("you can only change your own account")
