"""Registration, login and logout."""

from .base import BaseHandler
from .validation import BadInput

LOGIN_FAILED = "invalid name or password"


class RegistrationMixin:
    """POST /api/reg, also served at POST /api/user[/anything]."""

    async def register(self: BaseHandler) -> None:
        name = self.rules.name(self.arg("name"))
        password = self.rules.password(self.arg("password"))
        email = self.rules.email(self.arg("email"))
        attempt = await self.storage.limits.registration(self.client_address())
        try:
            user_id = await self.storage.users.register(name, email, password)
        except Exception:
            # Only accounts made count. (Not on cancellation: the deadline
            # has fired, and Redis may not answer; the reservation lapses.)
            await attempt.give_back()
            raise
        await attempt.count()
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
        # Holds a place in the limits while bcrypt runs, so concurrent
        # logins cannot slip past them; counted as a failure or a success.
        attempt = await self.storage.limits.login_attempt(name.lower(), self.client_address())
        try:
            session = await self.storage.users.login(name, password)
        except Exception:
            await attempt.give_back()  # (bcrypt's queue was full, or Redis failed): neither outcome
            raise
        if session is None:
            await attempt.count()
            raise BadInput(LOGIN_FAILED)
        await attempt.succeeded()
        await self.start_session(*session)
        self.set_header("Location", "/api/chats")
        self.reply(200)


class LogoutHandler(BaseHandler):
    # GET changes something here too: a cross-site link must not log anyone out.
    writing_methods = ("GET", "POST")

    async def get(self):
        await self.storage.users.end_session(self.user_id, self.get_cookie("token"))
        self.expire_session_cookies()
        self.set_header("Location", "/api/login")
        self.reply(200)

    post = get
