"""Send latency by chat size: `POST /api/chats/{id}` on one connection, one
request at a time, the chat sizes alternated in short blocks so that noise
on the machine falls on all of them. Each size's sends go round its
senders (bench/crowd.py), so that none is rate limited."""

import itertools

from . import sequential
from .traffic import SEND_BODY, Request

BLOCK = 20  # sends to one chat size before the next size's turn


def _sends(senders: list[tuple[int, str]]):
    """Endless sends, each from the next sender to their chat."""
    return itertools.cycle([Request("POST", f"/api/chats/{chat}", cookie, SEND_BODY, expect=201)
                            for chat, cookie in senders])  # fmt: skip


def measure(
    url: str, senders_by_size: dict[int, list[tuple[int, str]]], *, sends: int
) -> dict[int, sequential.Latency]:
    """`sends` timed sends at each chat size; chat size -> its latency."""
    connection = sequential.Connection(url)
    requests = {size: _sends(senders) for size, senders in senders_by_size.items()}
    timings = {size: sequential.Timings() for size in requests}
    try:
        # Each sender once, untimed: no send is timed as the first to its chat or from its user.
        for size, size_requests in requests.items():
            sequential.warm_up(connection, size_requests, len(senders_by_size[size]))
        for start in range(0, sends, BLOCK):
            for size, size_requests in requests.items():
                timings[size].take(connection, size_requests, min(BLOCK, sends - start))
    finally:
        connection.close()
    return {size: size_timings.latency() for size, size_timings in timings.items()}
