"""This process's part in presence: claims on the users it holds sockets
for, and the users its sockets watch.

While a user has a socket here, this process keeps a claim on them in Redis
(storage.presence) and renews it every TTL/3; the first claim and the last
one dropped announce the change on the user's presence channel. A socket
watches up to 500 users it shares a chat with; this process subscribes once
to each watched user's channel and re-reads their state every TTL/3, since
a process that died announces nothing (its claims just lapse), and tells
each watching socket of every change it sees.
"""

import asyncio
import logging
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable

import orjson
import redis.exceptions

from storage import StorageError, deadline
from storage.events import encode_event

log = logging.getLogger("chat.presence")

STOP_SECS = 2.0  # on shutdown: longest wait for the claims to be dropped
_REDIS_FAILED = (redis.exceptions.RedisError, StorageError, OSError)


class Presence:
    """Keeps user id -> whether this process claims them, and who watches whom.

    A socket is anything with `user_id` and `deliver(event)`; `is_open(socket)`
    says whether it is still one of the hub's.
    """

    def __init__(self, storage, *, ttl_secs: float, redis_timeout_secs: float, is_open: Callable[[object], bool]):
        self.process_id = secrets.token_hex(8)  # this process's name in the claims
        self._store = storage.presence
        self._feed = storage.feed
        self._ttl_ms = int(ttl_secs * 1000)
        self._timeout = redis_timeout_secs
        self._is_open = is_open
        self._local: set[int] = set()  # users with a socket here
        self._claimed: set[int] = set()  # users this process has (as far as it knows) a claim on
        self._writing: dict[int, bool] = {}  # user id -> changed again while its claim is being written
        self._tasks: set[asyncio.Task] = set()
        self._watching: dict[object, list[int]] = {}  # socket -> the users it watches
        self._watchers: dict[int, set] = defaultdict(set)  # user id -> the sockets watching them
        self._setting_up: Counter[int] = Counter()  # user id -> watch requests reading them
        self._known: dict[int, bool] = {}  # watched user -> their state as last told
        self._heard = 0  # announcements received so far
        self._heard_at: dict[int, int] = {}  # watched user -> `_heard` at their last announcement
        self._beat: asyncio.Task | None = None
        self._stopped = False
        self._feed.on_presence_event = self._announced
        self._feed.connection_listeners.append(self._connection_changed)

    @property
    def watched_count(self) -> int:
        return len(self._watchers)

    # This process's claims.

    def user_arrived(self, user_id: int) -> None:
        """The user's first socket here opened."""
        self._local.add(user_id)
        self._changed(user_id)

    def user_left(self, user_id: int) -> None:
        """The user's last socket here closed."""
        self._local.discard(user_id)
        self._changed(user_id)

    def _changed(self, user_id: int) -> None:
        """Brings the user's claim in line with `_local`: one writer per user at a time."""
        if self._stopped:
            return
        self._start()
        if user_id in self._writing:
            self._writing[user_id] = True  # the writer looks again when it is done
            return
        self._writing[user_id] = False
        self._spawn(self._write(user_id))

    async def _write(self, user_id: int) -> None:
        try:
            while True:
                self._writing[user_id] = False
                here = user_id in self._local
                if here != (user_id in self._claimed):
                    async with deadline.within(self._timeout):
                        if here:
                            await self._store.arrive(self.process_id, user_id, self._ttl_ms)
                            self._claimed.add(user_id)
                        else:
                            await self._store.depart(self.process_id, user_id)
                            self._claimed.discard(user_id)
                if not self._writing[user_id]:
                    return
        except _REDIS_FAILED as exc:
            # Retried by the next heartbeat; meanwhile a claim left behind lapses by itself.
            log.warning("could not write user %d's presence: %s", user_id, exc)
        finally:
            del self._writing[user_id]

    async def _heartbeat(self) -> None:
        """Renews this process's claims and re-reads the watched users, every TTL/3."""
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                users = [u for u in self._local if u not in self._writing]
                if users:
                    async with deadline.within(self._timeout):
                        await self._store.renew(self.process_id, users, self._ttl_ms)
                    self._claimed.update(users)
                # Users who left while the renewal was on its way, and departures that failed.
                for user_id in self._claimed - self._local:
                    self._changed(user_id)
                await self._poll()
            except _REDIS_FAILED as exc:
                log.warning("could not renew or read presence: %s", exc)
            except Exception:  # anything: the heartbeat must outlive it
                log.exception("presence heartbeat failed")

    # Watching.

    async def watch(self, socket, user_ids: list[int]) -> list[tuple[int, bool]]:
        """Replaces the users the socket watches with those of `user_ids` it
        shares a chat with; (user id, online) of each of those."""
        async with deadline.within(self._timeout):
            accepted = await self._store.visible_to(socket.user_id, user_ids)
        self._start()
        self._setting_up.update(accepted)
        read = False
        try:
            await asyncio.gather(*(self._feed.subscribe_presence(u) for u in accepted))
            await self._read(accepted)  # after subscribing: later changes arrive
            read = True
        finally:
            # On failure the socket keeps its old list.
            self._setting_up.subtract(accepted)
            unwatched = accepted
            if read and self._is_open(socket):
                unwatched = self._watching.pop(socket, [])
                for user_id in unwatched:
                    self._watchers[user_id].discard(socket)
                for user_id in accepted:
                    self._watchers[user_id].add(socket)
                if accepted:
                    self._watching[socket] = accepted
            for user_id in unwatched:
                self._drop_if_unwatched(user_id)
        return [(u, self._known[u]) for u in accepted]

    def forget(self, socket) -> None:
        """The socket closed: it watches nobody any more."""
        for user_id in self._watching.pop(socket, []):
            self._watchers[user_id].discard(socket)
            self._drop_if_unwatched(user_id)

    def _drop_if_unwatched(self, user_id: int) -> None:
        if self._watchers.get(user_id) or self._setting_up[user_id] > 0:
            return
        self._watchers.pop(user_id, None)
        del self._setting_up[user_id]
        self._known.pop(user_id, None)
        self._heard_at.pop(user_id, None)
        self._feed.unsubscribe_presence(user_id)

    async def _poll(self) -> None:
        if self._watchers:
            await self._read(list(self._watchers))

    async def _read(self, user_ids: list[int]) -> None:
        """Reads the users' states and tells their watchers of each change,
        unless an announcement about a user came while the read was on its way."""
        heard = self._heard
        async with deadline.within(self._timeout):
            states = await self._store.online(user_ids)
        for user_id, online in zip(user_ids, states):
            if self._heard_at.get(user_id, -1) < heard:
                self._learn(user_id, online)

    def _announced(self, user_id: int, text: str) -> None:
        self._heard += 1
        if user_id in self._watchers or self._setting_up[user_id] > 0:
            self._heard_at[user_id] = self._heard
        self._learn(user_id, orjson.loads(text)["online"])

    def _learn(self, user_id: int, online: bool) -> None:
        if not (self._watchers.get(user_id) or self._setting_up[user_id] > 0):
            return
        if self._known.get(user_id) == online:
            return
        self._known[user_id] = online
        event = encode_event("presence", user_id=user_id, online=online).encode()
        for socket in list(self._watchers.get(user_id, ())):
            socket.deliver(event)

    def _connection_changed(self, connected: bool) -> None:
        if connected and self._watchers:
            self._spawn(self._poll_quietly())  # announcements made while it was down are lost

    async def _poll_quietly(self) -> None:
        try:
            await self._poll()
        except _REDIS_FAILED as exc:
            log.warning("could not read presence: %s", exc)

    # Running.

    def _start(self) -> None:
        if self._beat is None and not self._stopped:
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Drops this process's claims (a clean shutdown: its users' watchers hear at once)."""
        self._stopped = True
        if self._beat is not None:
            self._beat.cancel()
        self._local.clear()
        try:
            async with asyncio.timeout(STOP_SECS):
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await asyncio.gather(
                    *(self._store.depart(self.process_id, u) for u in self._claimed), return_exceptions=True
                )
        except TimeoutError:
            log.warning("presence claims left to lapse by themselves")
        self._claimed.clear()
