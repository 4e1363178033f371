"""Send latency by chat size: `POST /api/chats/{id}` on one keep-alive
connection, one request at a time, the chat sizes alternated in short blocks
so that noise on the machine falls on all of them."""

import dataclasses
import socket
import statistics
import time
import urllib.parse

BODY = b"content=a+benchmark+message+of+ordinary+length"
WARM_UP_SENDS = 5  # per chat, not counted: the first sends load scripts and fill caches
BLOCK = 20  # sends to one chat before the next chat's turn
TIMEOUT_SECS = 10.0


@dataclasses.dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    sends: int
    errors: int  # answers other than 201


class Connection:
    """One HTTP/1.1 keep-alive connection that sends prepared requests and
    reads the answers with as little client work as it can, so that the
    time measured is the server's."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.host = f"{parts.hostname}:{parts.port}"
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_SECS)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def close(self) -> None:
        self._sock.close()

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


def send_request(host: str, chat_id: int, cookie: str) -> bytes:
    """The bytes of one send to a chat."""
    return (
        f"POST /api/chats/{chat_id} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


def measure(url: str, cookie: str, chats_by_size: dict[int, int], *, sends: int) -> dict[int, Latency]:
    """`sends` timed sends to each chat; chat size -> its latency."""
    connection = Connection(url)
    requests = {size: send_request(connection.host, chat, cookie) for size, chat in chats_by_size.items()}
    times: dict[int, list[float]] = {size: [] for size in requests}
    errors = dict.fromkeys(requests, 0)
    try:
        for request in requests.values():
            for _ in range(WARM_UP_SENDS):
                connection.exchange(request)
        for start in range(0, sends, BLOCK):
            for size, request in requests.items():
                for _ in range(min(BLOCK, sends - start)):
                    started = time.perf_counter()
                    status = connection.exchange(request)
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if status == 201:
                        times[size].append(elapsed_ms)
                    else:
                        errors[size] += 1
    finally:
        connection.close()
    return {size: _latency(times[size], errors[size]) for size in requests}


def _latency(times_ms: list[float], errors: int) -> Latency:
    """p50 and p99 of the timed sends (NaN when there are too few to tell)."""
    if len(times_ms) < 2:
        return Latency(float("nan"), float("nan"), len(times_ms), errors)
    p99 = statistics.quantiles(times_ms, n=100, method="inclusive")[98]
    return Latency(statistics.median(times_ms), p99, len(times_ms), errors)
