"""/api/user[/{user_id}]: looking people up, registering, editing and deleting accounts."""

from storage import Conflict, Forbidden
from storage.users import ALLOW_ADDS

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
            # Shown to the owner only: a refusal tells others enough of allow_adds.
            del user["email"], user["allow_adds"]
        self.write_json({"user": user})

    async def post(self, _ignored: str | None = None):
        await self.register()

    async def put(self, raw_user_id: str | None = None):
        """Change the caller's own name, email, password and/or allow_adds.

        A new password needs the current one, and ends every other session.
        """
        user_id = self.rules.entity_id(raw_user_id, "user_id")
        name, email, password = self.arg("name"), self.arg("email"), self.arg("password")
        allow_adds = self.arg("allow_adds")
        if name is None and email is None and password is None and allow_adds is None:
            raise BadInput("name, email, password or allow_adds is required")
        name = None if name is None else self.rules.name(name)
        email = None if email is None else self.rules.email(email)
        if allow_adds is not None and allow_adds not in ALLOW_ADDS:
            raise BadInput('allow_adds must be "anyone" or "contacts"')
        current = None
        if password is not None:
            password = self.rules.password(password)
            current = self.arg("current_password")
            if not current:
                raise BadInput("current_password is required to change the password")
        await self._check_own_account(user_id)
        checked = None if password is None else await self._check_current_password(user_id, current)
        if name is not None or email is not None or allow_adds is not None:
            await self.storage.users.update(user_id, name=name, email=email, allow_adds=allow_adds)
        if checked is not None:
            if not await self.storage.users.set_password(user_id, checked, password, self.get_cookie("token")):
                raise Conflict("the password was changed by another request; try again")
        self.reply(200)

    async def delete(self, raw_user_id: str | None = None):
        """Delete the caller's own account; ends all its sessions."""
        user_id = self.rules.entity_id(raw_user_id, "user_id")
        await self._check_own_account(user_id)
        await self.storage.users.delete(user_id)
        self.expire_session_cookies()
        self.reply(200)

    async def _check_current_password(self, user_id: int, current: str) -> str:
        """The stored hash, if `current` is the password; a wrong one counts
        as a failed login (a stolen session must not be able to guess it)."""
        name = (await self.storage.users.get(user_id))["name"]
        attempt = await self.storage.limits.login_attempt(name.lower(), self.client_address())
        try:
            checked = await self.storage.users.check_password(user_id, current)
        except Exception:
            await attempt.give_back()
            raise
        if checked is None:
            await attempt.count()
            raise Forbidden("current_password is wrong")
        await attempt.succeeded()
        return checked

    async def _check_own_account(self, user_id: int) -> None:
        """404 for an unknown user, 403 for anyone else's account."""
        if user_id != self.user_id:
            await self.storage.users.get(user_id)  # raises NotFound
            raise Forbidden("you can only change your own account")
