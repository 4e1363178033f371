"""What the simulated clients sent, what they were told, and what went wrong
as it happened; the auditor reads it at the end."""

import dataclasses
import time

# How a request ended, besides an HTTP status: no answer at all (refused,
# reset, timed out). Counted with the 503s as "the service did not serve".
NO_ANSWER = 0


@dataclasses.dataclass
class Send:
    """One message a client meant to store, under one Idempotency-Key."""

    key: str
    chat_id: int
    user_id: int
    content: str
    message_id: int | None = None
    outcome: str = "pending"  # "acked" (201 or ack), "gave_up", "refused" (a 4xx that is no fault's doing)
    edit: str | None = None  # the content an edit asked for
    edit_outcome: str | None = None  # "acked", "gave_up" or "refused"
    delete_outcome: str | None = None  # the same


@dataclasses.dataclass
class Answer:
    sent: float  # time.monotonic()
    at: float  # when it was answered (or given up on)
    status: int  # NO_ANSWER for none
    what: str  # "POST /api/chats/{id}" and the like


class Ledger:
    def __init__(self):
        self.started = time.monotonic()
        self.sends: dict[str, Send] = {}
        self.answers: list[Answer] = []
        # Found while running, by kind ("gap", "twice", "seq reused", "500", ...): what and when.
        self.problems: dict[str, list[str]] = {}
        self.events_delivered = 0
        self.resyncs = 0  # 410s and resync events that made a client re-read a chat
        self.reconnects = 0
        # (chat_id, epoch, seq) -> what that event was, as first seen by any socket
        self.seen: dict[tuple[int, str, int], tuple] = {}

    def answer(self, sent: float, status: int, what: str) -> None:
        self.answers.append(Answer(sent, time.monotonic(), status, what))

    def problem(self, kind: str, text: str) -> None:
        self.problems.setdefault(kind, []).append(f"{time.monotonic() - self.started:6.1f} s  {text}")

    def saw(self, chat_id: int, epoch: str, seq: int, identity: tuple, who: str) -> None:
        """Checks that (chat, epoch, seq) never stands for two different events."""
        known = self.seen.setdefault((chat_id, epoch, seq), identity)
        if known != identity:
            self.problem("seq reused", f"chat {chat_id} epoch {epoch} seq {seq} stood for {known} and, at {who}, for {identity}")
