"""The audit, with the service healthy again: every acknowledged message
against what the history finally holds, every socket's last seq against the
log, every event seen live against the log, every 503 against the faults."""

import dataclasses
import re
from collections import Counter

from .api import RETRY_STATUSES, Api
from .faults import Window
from .ledger import Ledger, Send
from .streams import identity, same_event
from .users import User

PAGE = 1000
# A 503 (or no answer) is the fault's doing if its request overlaps the
# fault's window widened by this: requests in flight when the fault ended
# finish within the Redis deadline and a reconnect.
GRACE_SECS = 5.0
TAG = re.compile(r"^\[([^\]]+)\]")


@dataclasses.dataclass
class Findings:
    counts: dict[str, int] = dataclasses.field(default_factory=Counter)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    outages: dict[str, float] = dataclasses.field(default_factory=dict)  # fault kind -> longest seconds

    def add(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, []).append(text)


async def read_history(api: Api, chat_id: int, page_size: int = PAGE) -> list[dict]:
    """The chat's whole history, oldest first: its newest page (no cursor),
    then older ones (`before`) until none is left."""
    pages: list[list[dict]] = []
    before = None
    while True:
        query = f"?limit={page_size}" + (f"&before={before}" if before else "")
        status, page = await api.call("GET", f"/api/chats/{chat_id}{query}", what="/api/chats/{id}")
        if status != 200:
            raise RuntimeError(f"reading chat {chat_id}'s history at the end: {status} {page}")
        if page["messages"]:
            pages.append(page["messages"])
        if not page["messages"] or (len(page["messages"]) < page_size and not page.get("next_before")):
            return [message for older in reversed(pages) for message in older]
        before = page.get("next_before") or page["messages"][0]["id"]


async def read_log(api: Api, chat_id: int) -> tuple[int, str, dict[int, dict]]:
    """The chat's newest seq, its epoch and every event its log keeps, by seq."""
    events: dict[int, dict] = {}
    since = 0
    while True:
        status, page = await api.call("GET", f"/api/chats/{chat_id}/events?since={since}&limit={PAGE}",
                                      what="/api/chats/{id}/events")  # fmt: skip
        if status != 200:
            raise RuntimeError(f"reading chat {chat_id}'s log at the end: {status} {page}")
        for event in page["events"]:
            events[event["seq"]] = event
        if not page["events"] or page["events"][-1]["seq"] >= page["seq"]:
            return page["seq"], page["epoch"], events
        since = page["events"][-1]["seq"]


def check_messages(findings: Findings, ledger: Ledger, histories: dict[int, list[dict]]) -> None:
    """Each acknowledged message stored exactly once, as last acknowledged; the rest at most once."""
    stored: dict[str, list[dict]] = {}
    for messages in histories.values():
        for message in messages:
            if tag := TAG.match(message["content"]):
                stored.setdefault(tag.group(1), []).append(message)
    for key in stored.keys() - ledger.sends.keys():
        findings.add("unexplained", f"a message no client sent: {stored[key][0]}")
    for key, send in ledger.sends.items():
        found = stored.get(key, [])
        if len(found) > 1:
            findings.add("duplicated", f"{key} stored {len(found)} times ({send.outcome})")
        elif send.outcome == "acked":
            _check_acked(findings, send, found)
        elif send.outcome == "refused" and found:
            findings.add("refused but stored", f"{key}: {found[0]}")


def _check_acked(findings: Findings, send: Send, found: list[dict]) -> None:
    if send.delete_outcome == "acked":
        if found:
            findings.add("lost", f"{send.key}: deleted (acknowledged) yet still there")
        return
    if not found:
        if send.delete_outcome is None:
            findings.add("lost", f"{send.key}: acknowledged as message {send.message_id} in chat {send.chat_id}, "
                                 "not in the history")  # fmt: skip
        return
    message = found[0]
    allowed = {"acked": {send.edit}, "gave_up": {send.content, send.edit}}.get(send.edit_outcome, {send.content})
    if message["id"] != send.message_id or message["content"] not in allowed:
        findings.add("changed", f"{send.key}: acknowledged as {send.message_id} {allowed}, found {message}")


def check_streams(findings: Findings, users: list[User], logs: dict[int, tuple[int, str, dict]]) -> None:
    """Every socket ends at its chats' newest seq, and what it saw live is what the log holds."""
    for user in users:
        for chat_id, stream in user.live.streams.items():
            seq, epoch, _ = logs[chat_id]
            if stream.seq != seq:
                findings.add("missing at the end", f"{user.name} chat {chat_id}: at seq {stream.seq} of "
                                                   f"{stream.epoch}, the log at {seq} of {epoch}")  # fmt: skip
            elif stream.epoch != epoch:
                # The server tells its sockets of a new epoch (`resync`, on the
                # log_epoch notice or when its catch-up finds the epoch
                # changed); a socket still on the old one at the end has
                # every event but missed that word: shown, not a failure.
                findings.add("on an old epoch at the end", f"{user.name} chat {chat_id}: {stream.epoch}, "
                                                           f"the log's {epoch}")  # fmt: skip


def check_seen(findings: Findings, ledger: Ledger, logs: dict[int, tuple[int, str, dict]]) -> None:
    for (chat_id, epoch, seq), seen in ledger.seen.items():
        _, final_epoch, events = logs[chat_id]
        if epoch == final_epoch and seq in events and not same_event(seen, identity(events[seq])):
            findings.add("seq reused", f"chat {chat_id} seq {seq}: seen live as {seen}, the log has "
                                       f"{identity(events[seq])}")  # fmt: skip


def check_answers(findings: Findings, ledger: Ledger, windows: list[Window]) -> None:
    """503s (and requests left unanswered) only while a fault was on; the
    longest time without one good answer, per fault kind."""
    for answer in ledger.answers:
        if answer.status in RETRY_STATUSES and not any(
            answer.sent <= w.end + GRACE_SECS and answer.at >= w.start for w in windows
        ):
            findings.add("503 outside a fault", f"{answer.what} {answer.status or 'no answer'} "
                                                f"at {answer.at - ledger.started:.1f} s")  # fmt: skip
    served = sorted(a.at for a in ledger.answers if a.status not in RETRY_STATUSES)
    for window in windows:
        points = [window.start] + [t for t in served if window.start < t <= window.end + GRACE_SECS]
        longest = max((b - a for a, b in zip(points, points[1:])), default=window.end + GRACE_SECS - window.start)
        findings.outages[window.kind] = max(findings.outages.get(window.kind, 0.0), longest)


async def audit(ledger: Ledger, users: list[User], windows: list[Window], readers: dict[int, Api]) -> Findings:
    """Every check; `readers` holds a member's client for each chat."""
    findings = Findings()
    for kind, texts in ledger.problems.items():
        for text in texts:
            findings.add(kind, text)
    histories = {chat_id: await read_history(api, chat_id) for chat_id, api in readers.items()}
    logs = {chat_id: await read_log(api, chat_id) for chat_id, api in readers.items()}
    check_messages(findings, ledger, histories)
    check_streams(findings, users, logs)
    check_seen(findings, ledger, logs)
    check_answers(findings, ledger, windows)
    return findings
