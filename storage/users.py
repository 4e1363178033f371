"""Users, their names and their sessions.

A name key (`name:alice`) is trusted only while the user it points to still
carries that name: a rename or deletion interrupted between its steps leaves
a key that nobody owns, which the next claim of that name takes over.
"""

import hashlib
import secrets
import time
from itertools import chain

from . import keys
from .cluster import fresh_id
from .errors import NameTaken, NotFound, Unavailable
from .records import utc_now_iso

TOKEN_BYTES = 32  # 256 random bits
# Past this, a login ends the user's oldest sessions (logins that succeed are
# not rate limited, and each session costs memory until it expires).
MAX_SESSIONS_PER_USER = 100
# Tries of ending all sessions, which starts over when a login raced it.
END_ALL_ATTEMPTS = 10
# Who may add a user to chats (the user hash's `allow_adds`; absent: anyone).
ALLOW_ADDS_ANYONE = "anyone"
ALLOW_ADDS_CONTACTS = "contacts"  # only people who share a chat with them
ALLOW_ADDS = (ALLOW_ADDS_ANYONE, ALLOW_ADDS_CONTACTS)


def token_digest(token: str) -> str:
    """What Redis stores of a token: a dump of the database grants no session."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, redis, scripts, chats, session_cache, passwords, *, token_ttl_secs: int, token_idle_secs: int):
        self._redis = redis
        self._passwords = passwords
        self._scripts = scripts
        self._chats = chats
        self._session_cache = session_cache
        self._token_ttl_secs = token_ttl_secs
        self._token_idle_secs = token_idle_secs

    # Accounts

    async def register(self, name: str, email: str, password: str) -> int:
        """Creates a user and returns its id; raises NameTaken."""
        folded = name.lower()
        if await self._live_owner(folded) is not None:
            raise NameTaken("name is already taken")  # before paying for bcrypt
        hashed = await self._passwords.hash(password)
        user_id = await self._new_user(name, email, hashed)
        try:
            await self._claim_name(folded, user_id)
        except NameTaken:
            await self._redis.delete(keys.user_key(user_id))
            raise
        return user_id

    async def _new_user(self, name: str, email: str, hashed: str) -> int:
        """Writes the user hash under a fresh id; its id."""

        async def create(user_id: int) -> bool:  # refused for a taken id (see create_user.lua)
            fields = {"id": user_id, "name": name, "email": email, "password": hashed, "created_at": utc_now_iso()}
            return bool(await self._scripts.run("create_user", [keys.user_key(user_id)], [*chain(*fields.items())]))

        return await fresh_id(self._redis, keys.USER_ID_SEQ, create)

    async def login(self, name: str, password: str) -> tuple[int, str] | None:
        """(user id, new session token) if name and password match, else None.

        The session is refused if the password changed or the account went
        away since the check, so a login racing either never outlives it.
        """
        user_id, checked_hash = await self._check_password(name, password)
        if user_id is None:
            return None
        try:
            return user_id, await self.create_session(user_id, checked_hash=checked_hash)
        except NotFound:
            return None

    async def check_password(self, user_id: int, password: str) -> str | None:
        """The stored hash if `password` is the user's, else None."""
        stored = await self._redis.hget(keys.user_key(user_id), "password")
        return stored if await self._passwords.check(password, stored) else None

    async def set_password(self, user_id: int, checked_hash: str, new: str, keep_token: str) -> bool:
        """Replaces the password if it is still `checked_hash` (else False),
        and ends every session of the user but the one holding `keep_token`."""
        hashed = await self._passwords.hash(new)
        if not await self._scripts.run("set_password", [keys.user_key(user_id)], [checked_hash, hashed]):
            return False
        await self.end_other_sessions(user_id, token_digest(keep_token))
        return True

    async def get(self, user_id: int) -> dict:
        """{"id", "name", "email", "allow_adds"}; raises NotFound (also while being deleted)."""
        name, email, allow_adds, deleted_at = await self._redis.hmget(
            keys.user_key(user_id), "name", "email", "allow_adds", "deleted_at"
        )
        if name is None or deleted_at is not None:
            raise NotFound("user not found")
        return {"id": user_id, "name": name, "email": email, "allow_adds": allow_adds or ALLOW_ADDS_ANYONE}

    async def find_by_name(self, name: str) -> dict:
        """The user holding a name, compared case-insensitively; raises NotFound."""
        user_id = await self._live_owner(name.lower())
        if user_id is None:
            raise NotFound("user not found")
        return await self.get(user_id)

    async def exists(self, user_id: int) -> bool:
        return await is_live(self._redis, user_id)

    async def names(self, user_ids: list[int]) -> dict[int, str]:
        """Display names of the given users that still exist."""
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.hmget(keys.user_key(user_id), "name", "deleted_at")
        found = await pipe.execute()
        return {uid: name for uid, (name, deleted_at) in zip(user_ids, found) if name and not deleted_at}

    async def update(
        self, user_id: int, *, name: str | None = None, email: str | None = None, allow_adds: str | None = None
    ) -> None:
        """Changes name, email and/or allow_adds (one of ALLOW_ADDS), all or
        nothing; raises NotFound, NameTaken."""
        old_name = (await self.get(user_id))["name"]
        renamed = name is not None and name.lower() != old_name.lower()
        if renamed:
            # Claimed while the user carries the old name as `name` and the new
            # one as `pending_name`: both stay held until the switch.
            await self._update_fields(user_id, "pending_name", name)
            try:
                await self._claim_name(name.lower(), user_id)
            except NameTaken:
                await self._update_fields(user_id, "pending_name", "")
                raise
        fields = ["pending_name", ""] if renamed else []
        fields += ["name", name] if name is not None else []
        fields += ["email", email] if email is not None else []
        fields += ["allow_adds", allow_adds] if allow_adds is not None else []
        await self._update_fields(user_id, *fields)
        if renamed:
            await self._scripts.run("release_name", [keys.name_key(old_name.lower())], [user_id])

    async def delete(self, user_id: int) -> None:
        """Ends the user's sessions, takes them out of every chat, frees the name.

        The account is marked deleted first: from then on no check finds it,
        no login can make a session for it, and a chat operation that raced
        with the deletion undoes itself (see ChatStore).
        """
        name = (await self.get(user_id))["name"]
        await self._scripts.write("HSET", keys.user_key(user_id), "deleted_at", utc_now_iso())
        await self.end_all_sessions(user_id)
        await self._chats.leave_all(user_id)
        await self._scripts.write(
            "DEL", keys.user_key(user_id), keys.user_chats_key(user_id), *keys.created_index_keys(user_id),
            keys.user_sessions_key(user_id),
        )
        await self._scripts.run("release_name", [keys.name_key(name.lower())], [user_id])

    async def _update_fields(self, user_id: int, *pairs: str) -> None:
        if not await self._scripts.run("update_user", [keys.user_key(user_id)], list(pairs)):
            raise NotFound("user not found")

    # Sessions

    async def create_session(self, user_id: int, *, checked_hash: str = "") -> str:
        """A new token for the user, valid for the configured lifetimes; raises
        NotFound if the account is gone or being deleted, or its password is
        no longer `checked_hash` (when given)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = token_digest(token)
        sessions = await self._scripts.run(
            "create_session",
            [keys.user_key(user_id), keys.session_key(user_id, digest), keys.user_sessions_key(user_id)],
            [digest, f"{time.time():.6f}", self._token_ttl_secs, self._token_idle_secs, checked_hash],
        )
        if not sessions:
            raise NotFound("user not found")
        if sessions > MAX_SESSIONS_PER_USER:
            await self._end_oldest_sessions(user_id)
        return token

    async def has_session(self, user_id: int, token: str, *, fresh: bool = False) -> bool:
        """Whether the token is a live session of the user; `fresh` asks Redis, not the cache."""
        digest = token_digest(token)
        cache = self._session_cache
        if not fresh and cache.knows(user_id, digest):
            return True
        epoch = cache.epoch
        # One round trip, one slot: the session key, the account not marked
        # deleted (a deletion cut short after marking must not leave it
        # usable), and another idle timeout for the session.
        secs_left = await self._scripts.run(
            "touch_session",
            [keys.user_key(user_id), keys.session_key(user_id, digest)],
            [int(time.time()), self._token_idle_secs],
        )
        if not secs_left:
            return False
        cache.remember(user_id, digest, epoch, secs_left)
        return True

    async def end_session(self, user_id: int, token: str) -> None:
        """Logs one session out; its open sockets are told to close."""
        digest = token_digest(token)
        await self._run_end_sessions(user_id, "these", [digest])
        self._session_cache.evict(user_id, digest)  # here at once; elsewhere via pub/sub

    async def end_all_sessions(self, user_id: int) -> None:
        # The script refuses if the set changed since it was read: a login
        # racing with this cannot leave a session behind.
        for _ in range(END_ALL_ATTEMPTS):
            digests = await self._redis.zrange(keys.user_sessions_key(user_id), 0, -1)
            if await self._run_end_sessions(user_id, "all", digests) >= 0:
                break
        else:
            raise Unavailable("sessions kept changing; try again")
        self._session_cache.evict(user_id, None)

    async def end_other_sessions(self, user_id: int, keep_digest: str) -> None:
        """Ends every session of the user except one; their sockets are told to close."""
        await self._end_sessions(user_id, lambda digests: [d for d in digests if d != keep_digest])

    async def _end_oldest_sessions(self, user_id: int) -> None:
        """Ends the sessions past the newest MAX_SESSIONS_PER_USER (oldest end first)."""
        await self._end_sessions(user_id, lambda digests: digests[: max(0, len(digests) - MAX_SESSIONS_PER_USER)])

    async def _end_sessions(self, user_id: int, choose) -> None:
        """Ends the sessions `choose(digests, oldest first)` picks.

        A session made meanwhile is not among them, and needs not be: only
        one made before the change (old password) must end, and it was read.
        """
        ended = choose(await self._redis.zrange(keys.user_sessions_key(user_id), 0, -1))
        if ended:
            await self._run_end_sessions(user_id, "these", ended)
        for digest in ended:
            self._session_cache.evict(user_id, digest)

    async def _run_end_sessions(self, user_id: int, mode: str, digests: list[str]) -> int:
        """Ends sessions and announces it, in one script (lua/end_sessions.lua)."""
        key_names = [keys.user_sessions_key(user_id), *(keys.session_key(user_id, d) for d in digests)]
        return await self._scripts.run(
            "end_sessions", key_names, [mode, keys.SESSIONS_ENDED_CHANNEL, user_id, *digests]
        )

    # Names and passwords

    async def _check_password(self, name: str, password: str) -> tuple[int | None, str]:
        """(user id, the stored hash) if name and password match, else (None, "");
        an unknown name costs the same as a wrong password."""
        user_id = await self._live_owner(name.lower())
        stored = None
        if user_id is not None:
            stored = await self._redis.hget(keys.user_key(user_id), "password")
        if await self._passwords.check(password, stored):
            return user_id, stored
        return None, ""

    async def _live_owner(self, folded: str) -> int | None:
        """Who holds a case-folded name, ignoring keys left by interrupted changes."""
        return await self._check_holder(folded, await self._redis.get(keys.name_key(folded)))

    async def _check_holder(self, folded: str, raw_id: str | None) -> int | None:
        """The id a name key holds, if that user still carries (or is taking) the name."""
        if raw_id is None:
            return None
        name, pending, deleted_at = await self._redis.hmget(
            keys.user_key(int(raw_id)), "name", "pending_name", "deleted_at"
        )
        carries = any(held is not None and held.lower() == folded for held in (name, pending))
        return int(raw_id) if carries and deleted_at is None else None

    async def _claim_name(self, folded: str, user_id: int) -> None:
        key = keys.name_key(folded)
        holder = await self._redis.get(key)
        live_holder = await self._check_holder(folded, holder)
        if live_holder == user_id:
            return  # ours already: a rename cut short and tried again
        if live_holder is not None:
            raise NameTaken("name is already taken")
        # Compare-and-set against what we read: a racing claim makes this fail.
        if not await self._scripts.run("claim_name", [key], [user_id, holder or ""]):
            raise NameTaken("name is already taken")


async def is_live(redis, user_id: int) -> bool:
    """Whether the account exists and is not being deleted."""
    name, deleted_at = await redis.hmget(keys.user_key(user_id), "name", "deleted_at")
    return name is not None and deleted_at is None
