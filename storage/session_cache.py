"""Sessions this process has recently seen valid, so most requests skip the
Redis round trip that checks them.

Trusted only while the process is subscribed to `sessions:ended`: every
logout and account deletion evicts here within the pub/sub delay, the cache
is emptied whenever the subscription drops, and an entry lives at most
CACHE_SECS and never past half of the session's own time left. A check that raced
with a logout is not cached (the epoch).
"""

import time

CACHE_SECS = 30.0
MAX_ENTRIES = 100_000


class SessionCache:
    def __init__(self, feed):
        self._feed = feed
        self._valid_until: dict[tuple[int, str], float] = {}
        self.epoch = 0  # bumped by every eviction: see `remember`
        feed.session_listeners.append(self.evict)
        feed.connection_listeners.append(lambda connected: self.clear())

    def knows(self, user_id: int, digest: str) -> bool:
        if not self._feed.connected:
            return False
        until = self._valid_until.get((user_id, digest))
        if until is None:
            return False
        if until < time.monotonic():
            del self._valid_until[(user_id, digest)]
            return False
        return True

    def remember(self, user_id: int, digest: str, epoch: int, secs_left: float) -> None:
        """Caches a session found valid, with `secs_left` to live, by a check
        that began at `epoch`."""
        if epoch != self.epoch or not self._feed.connected:
            return  # a logout may have landed while we asked Redis
        if len(self._valid_until) >= MAX_ENTRIES:
            self._valid_until.clear()
        # Half of what is left: a session in use reaches Redis (which extends
        # its idle timeout) before the timeout can run out.
        self._valid_until[(user_id, digest)] = time.monotonic() + min(CACHE_SECS, secs_left / 2)

    def evict(self, user_id: int, digest: str | None) -> None:
        self.epoch += 1
        if digest is not None:
            self._valid_until.pop((user_id, digest), None)
        else:
            for key in [k for k in self._valid_until if k[0] == user_id]:
                del self._valid_until[key]

    def clear(self) -> None:
        self.epoch += 1
        self._valid_until.clear()
