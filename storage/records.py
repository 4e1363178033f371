"""How values are written into Redis: timestamps and message JSON."""

import datetime
import json
import secrets


def utc_now_iso() -> str:
    """Now as ISO 8601 UTC with milliseconds, e.g. 2026-11-23T18:34:00.123Z."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_json_tail(content: str) -> str:
    """The end of a stored message's JSON, `"content":...}`: the send script
    writes the id, sender and time before it."""
    return json.dumps({"content": content}, ensure_ascii=False, separators=(",", ":"))[1:]


def json_string(text: str) -> str:
    """A string as a JSON value, written as message JSON writes its content."""
    return json.dumps(text, ensure_ascii=False)


def new_epoch() -> str:
    """A fresh name for a chat log's incarnation."""
    return secrets.token_hex(8)


def new_chat_summary(chat_id: int, title: str, owner_id: int, created_at: str, epoch: str) -> str:
    """The summary of a chat without messages (the scripts keep it up to date)."""
    return json.dumps(
        {
            "id": chat_id,
            "title": title,
            "owner_id": owner_id,
            "created_at": created_at,
            "last_message": None,
            "last_message_id": None,
            "last_message_time": None,
            "sender_id": None,
            "last_message_edited_at": None,
            "seq": 0,
            "epoch": epoch,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
