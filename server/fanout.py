"""Writing events to this process's sockets in slices, so that one chat with
thousands of local sockets never holds the event loop for long.

Every write the hub makes goes through one queue per process, in the order
the hub made them: a socket therefore gets its events in that order, however
the writes are sliced. A slice writes at most `slice_sockets` sockets, then
yields to the event loop (other requests run) before the next. While nothing
waits, a write goes out at once, within the same budget.

An event is encoded once: its bytes (and its WebSocket frame, built on the
first write) are shared by every socket it goes to (`SharedEvent`).
"""

import asyncio
import functools
import logging
import struct
from collections import deque

log = logging.getLogger("chat.live")

_TEXT_FRAME = 0x81  # FIN, opcode 1 (text)


class SharedEvent(bytes):
    """An event's JSON, written to many sockets: its WebSocket frame is built
    once (`websocket_frame`) instead of once per socket."""

    @functools.cached_property
    def websocket_frame(self) -> bytes:
        """The unmasked text frame a server sends (RFC 6455 5.2), uncompressed."""
        size = len(self)
        if size < 126:
            header = struct.pack("!BB", _TEXT_FRAME, size)
        elif size <= 0xFFFF:
            header = struct.pack("!BBH", _TEXT_FRAME, 126, size)
        else:
            header = struct.pack("!BBQ", _TEXT_FRAME, 127, size)
        return header + self


def shared(data: str | bytes) -> SharedEvent:
    """The event as a SharedEvent (as it is when already one)."""
    if isinstance(data, SharedEvent):
        return data
    return SharedEvent(data.encode() if isinstance(data, str) else data)


class _Job:
    """One event and the sockets it still goes to, in order."""

    __slots__ = ("data", "sockets", "next")

    def __init__(self, data: SharedEvent, socket):
        self.data = data
        self.sockets = [socket]
        self.next = 0  # index of the next socket to write


class Fanout:
    """The process's queue of socket writes (see the module docstring)."""

    def __init__(self, *, slice_sockets: int):
        self._slice = slice_sockets
        self._queue: deque = deque()  # _Job, or a Future set once everything before it is written
        self._spent = 0  # writes made since the event loop last ran something else
        self._reset_scheduled = False
        self._worker: asyncio.Task | None = None

    @property
    def waiting(self) -> int:
        """Socket writes queued, not made yet."""
        return sum(len(job.sockets) - job.next for job in self._queue if isinstance(job, _Job))

    def send(self, data: str | bytes, socket) -> None:
        """Writes the event to the socket after every write queued before it."""
        if not self._queue and self._spent < self._slice:
            self._spend(1)
            _deliver(socket, data)
            return
        tail = self._queue[-1] if self._queue else None
        if isinstance(tail, _Job) and tail.data is data:
            tail.sockets.append(socket)  # the same event to one more socket: the same job
        else:
            self._queue.append(_Job(shared(data), socket))
        self._start()

    async def flushed(self) -> None:
        """Returns once every write queued before this call has been made."""
        if not self._queue:
            return
        done = asyncio.get_running_loop().create_future()
        self._queue.append(done)
        self._start()
        await done

    def stop(self) -> None:
        """Drops what is queued (the sockets are closing)."""
        for job in self._queue:
            if not isinstance(job, _Job) and not job.done():
                job.set_result(None)
        self._queue.clear()
        if self._worker is not None:
            self._worker.cancel()

    def _start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self._spent >= self._slice:
                    await asyncio.sleep(0)  # a slice is done: let the loop serve others
                    self._spent = 0
                    continue
                job = self._queue[0]
                if not isinstance(job, _Job):
                    self._queue.popleft()
                    if not job.done():
                        job.set_result(None)
                    continue
                end = min(len(job.sockets), job.next + self._slice - self._spent)
                for index in range(job.next, end):
                    _deliver(job.sockets[index], job.data)
                self._spend(end - job.next)
                job.next = end
                if end == len(job.sockets):
                    self._queue.popleft()
        finally:
            self._worker = None

    def _spend(self, writes: int) -> None:
        """Counts writes against this turn of the event loop's budget."""
        self._spent += writes
        if not self._reset_scheduled:
            self._reset_scheduled = True
            asyncio.get_running_loop().call_soon(self._reset)

    def _reset(self) -> None:
        self._reset_scheduled = False
        if self._worker is None:
            self._spent = 0  # (the worker resets it itself after each slice)


def _deliver(socket, data) -> None:
    try:
        socket.deliver(data)
    except Exception:  # one socket's failure must not stop the others' events
        log.exception("could not write an event to a socket")
