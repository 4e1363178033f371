"""Registration, login and logout."""

from storage import NotFound

from .base import BaseHandler
from .validation import BadInput

LOGIN_FAILED = "invalid name or password"


class RegistrationMixin:
    """POST /api/reg, also served at POST /api/user[/anything]."""

    async def register(self: BaseHandler) -> None:
        name = self.rules.name(self.arg("name"))
        password = self.rules.password(self.arg("password"))
        email = self.rules.email(self.arg("email"))
        user_id = await self.storage.users.register(name, email, password)
        await self.start_session(user_id)
        self.set_header("Location", "/api/chats")
        self.reply(201, id=user_id)


class RegisterHandler(RegistrationMixin, BaseHandler):
    public_methods = ("POST",)

    async def post(self):
        await self.register()


class LoginHandler(BaseHandler):
    public_methods = ("POST",)

    async def post(self):
        # A malformed name or password cannot belong to anyone: the same
        # answer as a wrong password, so the reply never tells which was wrong.
        try:
            name = self.rules.name(self.arg("name"))
        except BadInput:
            raise BadInput(LOGIN_FAILED) from None
        password = self.arg("password") or ""
        user_id = await self.storage.users.authenticate(name, password)
        if user_id is None:
            raise BadInput(LOGIN_FAILED)
        try:
            await self.start_session(user_id)
        except NotFound:
            raise BadInput(LOGIN_FAILED) from None  # deleted since the password check
        self.set_header("Location", "/api/chats")
        self.reply(200)


class LogoutHandler(BaseHandler):
    async def get(self):
        await self.storage.users.end_session(self.user_id, self.get_cookie("token"))
        self.expire_session_cookies()
        self.set_header("Location", "/api/login")
        self.reply(200)

    post = get
