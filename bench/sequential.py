"""The one-connection latency lines: requests on one keep-alive connection,
one at a time, each timed from its first byte sent to its answer's last
byte read, by a client that does as little as it can, so that the time
measured is the server's (and finer than Locust's whole milliseconds)."""

import dataclasses
import socket
import statistics
import time
import urllib.parse
from collections.abc import Iterator

from .traffic import Request

WARM_UP = 5  # requests per target, not timed: the first ones load scripts and fill caches
TIMEOUT_SECS = 10.0


@dataclasses.dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    count: int  # timed requests answered as expected
    errors: int  # answers with another status


class Connection:
    """One HTTP/1.1 keep-alive connection that sends prepared requests and
    reads the answers."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.host = f"{parts.hostname}:{parts.port}"
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_SECS)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def close(self) -> None:
        self._sock.close()

    def encode(self, request: Request) -> bytes:
        """The bytes of a request on this connection."""
        body = (request.body or "").encode()
        head = f"{request.method} {request.path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if request.cookie:
            head += f"Cookie: {request.cookie}\r\n"
        if body:
            head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    def exchange(self, request: bytes) -> int:
        """Sends one request and reads its whole answer; the answer's status."""
        self._sock.sendall(request)
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self._buffer) < length:
            self._receive()
        self._buffer = self._buffer[length:]
        return int(head.split(b" ", 2)[1])

    def _receive(self) -> None:
        """Adds what the server sent next to the buffer."""
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk


class Timings:
    """The times of one target's answers that had the expected status, and
    a count of those that did not."""

    def __init__(self):
        self.times_ms: list[float] = []
        self.errors = 0

    def take(self, connection: Connection, requests: Iterator[Request], count: int) -> None:
        """Times the next `count` requests."""
        for request in (next(requests) for _ in range(count)):
            encoded = connection.encode(request)
            started = time.perf_counter()
            status = connection.exchange(encoded)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if status == request.expect:
                self.times_ms.append(elapsed_ms)
            else:
                self.errors += 1

    def latency(self) -> Latency:
        """p50 and p99 (NaN when there are too few to tell)."""
        if len(self.times_ms) < 2:
            return Latency(float("nan"), float("nan"), len(self.times_ms), self.errors)
        p99 = statistics.quantiles(self.times_ms, n=100, method="inclusive")[98]
        return Latency(statistics.median(self.times_ms), p99, len(self.times_ms), self.errors)


def warm_up(connection: Connection, requests: Iterator[Request], count: int = WARM_UP) -> None:
    """`count` requests, answers unchecked."""
    for request in (next(requests) for _ in range(count)):
        connection.exchange(connection.encode(request))


def measure(url: str, requests: Iterator[Request], *, count: int) -> Latency:
    """`count` timed requests from `requests`, after a warm-up."""
    connection, timings = Connection(url), Timings()
    try:
        warm_up(connection, requests)
        timings.take(connection, requests, count)
    finally:
        connection.close()
    return timings.latency()
