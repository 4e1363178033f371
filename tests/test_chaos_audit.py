"""The chaos auditor's own checks, fed what a broken service would produce:
each must be reported (a check that cannot fail proves nothing)."""

import pytest

from chaos.api import Api
from chaos.audit import Findings, check_answers, check_messages, check_seen, check_streams, read_history
from chaos.faults import Window
from chaos.ledger import NO_ANSWER, Answer, Ledger, Send
from chaos.streams import ChatStream

from .api_helpers import create_chat
from .api_helpers import send as post_message


def message_event(seq: int, message_id: int, content: str) -> dict:
    return {"type": "message", "chat_id": 3, "seq": seq,
            "message": {"id": message_id, "sender_id": 1, "time": "t", "content": content}}  # fmt: skip


def stream(ledger: Ledger, seq: int = 0, epoch: str = "e1") -> ChatStream:
    return ChatStream(ledger, "alice", 3, seq, epoch)


def test_a_stream_in_order_is_no_problem():
    ledger = Ledger()
    chat = stream(ledger)
    for seq in (1, 2, 3):
        chat.on_event(message_event(seq, seq, f"m{seq}"))
    assert ledger.problems == {} and chat.seq == 3 and ledger.events_delivered == 3


def test_a_gap_and_an_event_twice_are_reported():
    ledger = Ledger()
    chat = stream(ledger)
    chat.on_event(message_event(1, 1, "a"))
    chat.on_event(message_event(3, 3, "c"))
    chat.on_event(message_event(3, 3, "c"))
    assert len(ledger.problems["gap"]) == 1 and len(ledger.problems["twice"]) == 1


def test_one_seq_for_two_events_is_reported_across_sockets():
    ledger = Ledger()
    stream(ledger).on_event(message_event(1, 1, "before the failover"))
    ChatStream(ledger, "bob", 3, 0, "e1").on_event(message_event(1, 1, "after it, the same numbers"))
    assert len(ledger.problems["seq reused"]) == 1


def test_a_resume_ack_behind_what_the_socket_saw_is_reported():
    ledger = Ledger()
    chat = stream(ledger, seq=10)
    chat.on_resume_ack(8, "e1")
    assert len(ledger.problems["seq reused"]) == 1
    chat.on_resume_ack(12, "e1")
    assert len(ledger.problems["seq reused"]) == 1


def test_a_resync_drops_what_the_reread_covers_and_checks_the_rest():
    ledger = Ledger()
    chat = stream(ledger, seq=2)
    chat.begin_resync()
    chat.on_event(message_event(4, 4, "d"))
    chat.end_resync(5, "e2")  # re-read at seq 5 of a new epoch
    chat.on_event(message_event(5, 5, "a late live copy of what the re-read had"))
    chat.on_event(message_event(7, 7, "g"))
    assert chat.seq == 7 and chat.epoch == "e2"
    assert list(ledger.problems) == ["gap"] and "seq 6..6 missing" in ledger.problems["gap"][0]


def send(key: str, **fields) -> Send:
    return Send(key, 3, 1, f"[{key}] hi", **fields)


def stored(key: str, message_id: int, content: str | None = None) -> dict:
    return {"id": message_id, "sender_id": 1, "time": "t", "content": content or f"[{key}] hi"}


def test_messages_lost_duplicated_changed_or_unexplained_are_found():
    ledger = Ledger()
    ledger.sends = {
        "ok": send("ok", message_id=1, outcome="acked"),
        "lost": send("lost", message_id=2, outcome="acked"),
        "twice": send("twice", outcome="gave_up"),
        "edited": send("edited", message_id=5, outcome="acked", edit="[edited] hi (edited)", edit_outcome="acked"),
        "deleted": send("deleted", message_id=6, outcome="acked", delete_outcome="acked"),
        "unsure": send("unsure", outcome="gave_up"),
    }
    history = [stored("ok", 1), stored("twice", 3), stored("twice", 4), stored("edited", 5),
               stored("deleted", 6), stored("stranger", 7)]  # fmt: skip
    findings = Findings()
    check_messages(findings, ledger, {3: history})
    assert findings.counts == {"lost": 2, "duplicated": 1, "changed": 1, "unexplained": 1}


def test_sockets_behind_the_log_and_live_events_the_log_contradicts_are_found():
    class User:
        name = "alice"

        class live:
            streams = {3: ChatStream(Ledger(), "alice", 3, 5, "e1")}

    ledger = Ledger()
    ledger.saw(3, "e1", 4, ("message", 4, "lost in a failover"), "alice")
    ledger.saw(3, "e0", 4, ("message", 4, "an older epoch is not compared"), "alice")
    logs = {3: (6, "e1", {4: message_event(4, 4, "handed out again")})}
    findings = Findings()
    check_streams(findings, [User], logs)
    check_seen(findings, ledger, logs)
    assert findings.counts == {"missing at the end": 1, "seq reused": 1}


def test_503s_outside_a_fault_and_the_longest_outage():
    ledger = Ledger()
    start = ledger.started
    windows = [Window("redis_freeze", start + 10, start + 13, "")]
    ledger.answers = [
        Answer(start + 9.0, start + 9.5, 200, "GET"),
        Answer(start + 10.5, start + 12.5, 503, "GET"),  # inside
        Answer(start + 11.0, start + 13.2, NO_ANSWER, "GET"),  # inside
        Answer(start + 13.0, start + 13.4, 200, "GET"),
        Answer(start + 30.0, start + 30.1, 503, "GET"),  # outside any fault
    ]
    findings = Findings()
    check_answers(findings, ledger, windows)
    assert findings.counts == {"503 outside a fault": 1}
    assert round(findings.outages["redis_freeze"], 1) == 3.4


@pytest.mark.gen_test(timeout=30)
async def test_the_history_read_at_the_end_is_the_whole_history_oldest_first(base_url, make_user):
    """Against the real service, with pages smaller than the chat: the first
    page (no cursor) is the newest, so the reader pages back from it."""
    alice = await make_user()
    chat_id = await create_chat(alice)
    ids = [await post_message(alice, chat_id, f"m{n}") for n in range(7)]
    api = Api(base_url, Ledger())
    api.cookies = dict(alice.cookies)
    for page_size in (2, 3, 7, 100):
        assert [m["id"] for m in await read_history(api, chat_id, page_size)] == ids
