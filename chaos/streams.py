"""One socket's view of one chat's events, checked as they arrive: in `seq`
order, none twice, none missing, and no (epoch, seq) naming two events."""

from collections import deque

from .ledger import Ledger

TRACE_LENGTH = 16  # what a problem report shows of how the stream got there


def identity(event: dict) -> tuple:
    """What a chat event was, in a form two sockets (or the log) can compare."""
    kind = event["type"]
    if kind in ("message", "message_edited"):
        message = event.get("message") or {}
        return kind, message.get("id"), message.get("content")
    if kind == "message_deleted":
        return kind, event.get("message_id")
    if kind == "chat_renamed":
        return kind, event.get("title")
    return kind, event.get("user_id")


def same_event(seen: tuple, logged: tuple) -> bool:
    """Whether an event seen live is the one the log holds at its seq. The log
    replays a message deleted since without its content: then ids must agree."""
    if seen[:2] != logged[:2]:
        return False
    return len(seen) < 3 or logged[2] is None or seen[2] == logged[2]


class ChatStream:
    """What one socket has of one chat: the log's epoch and the last seq.

    While the client re-reads the chat (after a 410 or a `resync`), events
    are held; the re-read's position then drops those it covers, as a real
    client would, and the rest must follow on from it.
    """

    def __init__(self, ledger: Ledger, who: str, chat_id: int, seq: int, epoch: str):
        self.ledger = ledger
        self.who = who
        self.chat_id = chat_id
        self.seq = seq
        self.epoch = epoch
        self.floor = seq  # events at or below it came with a re-read: late copies are dropped
        self.held: list[dict] | None = None
        self.trace: deque[str] = deque(maxlen=TRACE_LENGTH)

    def note(self, what: str) -> None:
        self.trace.append(what)

    def _problem(self, kind: str, text: str) -> None:
        self.ledger.problem(kind, f"{self.who} chat {self.chat_id}: {text}; before: {' '.join(self.trace)}")

    @property
    def resyncing(self) -> bool:
        return self.held is not None

    def on_event(self, event: dict) -> None:
        self.note(f"{event['seq']}{'h' if self.held is not None else ''}")
        if self.held is not None:
            self.held.append(event)
        else:
            self._take(event)

    def on_resume_ack(self, seq: int, epoch: str) -> None:
        self.note(f"ack:{seq}")
        if epoch != self.epoch:
            self._problem("other", f"resumed in epoch {self.epoch}, acked in {epoch}")
        elif seq < self.seq:
            self._problem("seq reused", f"the log went back from seq {self.seq} to {seq} within epoch {epoch}")

    def begin_resync(self) -> None:
        self.note("resync")
        if self.held is None:
            self.held = []
            self.ledger.resyncs += 1

    def end_resync(self, seq: int, epoch: str) -> None:
        """The chat was re-read at `seq` of `epoch`: go on from there."""
        self.note(f"reread:{seq}")
        held, self.held = self.held or [], None
        self.seq, self.epoch, self.floor = seq, epoch, seq
        for event in held:
            self._take(event)

    def _take(self, event: dict) -> None:
        seq = event["seq"]
        if seq <= self.floor and self.seq == self.floor:
            return  # a live copy of an event the re-read already covered
        if seq <= self.seq:
            self._problem("twice", f"seq {seq} again (had {self.seq})")
            return
        if seq > self.seq + 1:
            self._problem("gap", f"seq {self.seq + 1}..{seq - 1} missing before {seq}")
        self.seq = seq
        self.ledger.events_delivered += 1
        self.ledger.saw(self.chat_id, self.epoch, seq, identity(event), self.who)
