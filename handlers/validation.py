"""Input rules, checked once at the boundary; storage trusts what passes.

Each rule takes the raw value (a str, or None when absent) and returns the
clean value or raises BadInput with a message meant for the client.
"""

import re
import unicodedata

from storage.records import json_string

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")
_ID_RE = re.compile(r"[0-9]{1,14}")  # Lua writes numbers with 14 significant digits
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII
_EPOCH_RE = re.compile(r"[A-Za-z0-9]+")
EPOCH_MAX_CHARS = 64
WATCH_MAX_USERS = 500  # users one socket may watch the presence of


class BadInput(ValueError):
    """The request carries a missing or malformed value (HTTP 400)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _required(value: str | None, field: str) -> str:
    if value is None or value == "":
        raise BadInput(f"{field} is required")
    return value


def string_fields(data, what: str) -> dict[str, str]:
    """A decoded JSON object's fields as strings, as a form would carry them.

    Integers (and whole floats: JSON does not tell 1.0 from 1) become their
    digits, since ids may be sent as numbers; anything else that is not a
    string is refused.
    """
    if not isinstance(data, dict):
        raise BadInput(f"{what} must be a JSON object")
    fields = {}
    for key, value in data.items():
        if not is_encodable(key):
            raise BadInput("a field name is not valid unicode")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON does not tell 1.0 from 1
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise BadInput(f"{key} must be a string or an integer")
        if not is_encodable(value):
            raise BadInput(f"{key} is not valid unicode")
        fields[key] = value
    return fields


def is_encodable(text: str) -> bool:
    """False for text JSON let through but UTF-8 cannot carry (lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def _stored_bytes(text: str) -> int:
    """The size of a content as message JSON stores it (without the quotes)."""
    return len(json_string(text).encode()) - 2


class Rules:
    """The input rules, with the limits of one Settings."""

    def __init__(self, settings):
        self._s = settings

    def name(self, value: str | None) -> str:
        value = _required(value, "name")
        if len(value) > self._s.name_max_chars or not _NAME_RE.fullmatch(value):
            raise BadInput(
                f"name must be 1-{self._s.name_max_chars} characters: "
                "letters, digits, '_', '.' or '-'"
            )
        return value

    def password(self, value: str | None) -> str:
        value = _required(value, "password")
        size = len(value.encode())
        if not self._s.password_min_bytes <= size <= self._s.password_max_bytes:
            raise BadInput(
                f"password must be {self._s.password_min_bytes}-{self._s.password_max_bytes} bytes"
            )
        return value

    def email(self, value: str | None) -> str:
        value = _required(value, "email")
        if len(value) > self._s.email_max_chars or not _EMAIL_RE.fullmatch(value):
            raise BadInput(
                f"email must look like user@example.org, at most {self._s.email_max_chars} characters"
            )
        return value

    def title(self, value: str | None) -> str:
        """Trimmed; 1..title_max_chars characters, no control characters."""
        value = _required(value, "title").strip()
        if not 1 <= len(value) <= self._s.title_max_chars or _has_control_chars(value):
            raise BadInput(
                f"title must be 1-{self._s.title_max_chars} characters, "
                "not blank, without control characters"
            )
        return value

    def content(self, value: str | None) -> str:
        """Kept exactly as sent; must hold something that is not whitespace,
        and fit in --content-max-bytes once stored as a JSON string."""
        value = _required(value, "content")
        if len(value) > self._s.content_max_chars or not value.strip():
            raise BadInput(
                f"content must be 1-{self._s.content_max_chars} characters, not all blank"
            )
        if len(value) * 6 > self._s.content_max_bytes and _stored_bytes(value) > self._s.content_max_bytes:
            raise BadInput(
                f"content must be at most {self._s.content_max_bytes} bytes once stored as JSON "
                "(UTF-8; a control character takes up to 6 bytes, a quote or backslash 2)"
            )
        return value

    def entity_id(self, value: str | None, field: str) -> int:
        value = _required(value, field)
        if not _ID_RE.fullmatch(value) or int(value) == 0:
            raise BadInput(f"{field} must be a positive integer")
        return int(value)

    def user_ids(self, value, field: str = "user_ids") -> list[int]:
        """A JSON array of at most WATCH_MAX_USERS positive integers, each once, in order."""
        if not isinstance(value, list):
            raise BadInput(f"{field} must be an array of user ids")
        if len(value) > WATCH_MAX_USERS:
            raise BadInput(f"{field} must hold at most {WATCH_MAX_USERS} ids")
        ids = []
        for item in value:
            if isinstance(item, float) and item.is_integer():
                item = int(item)  # JSON does not tell 1.0 from 1
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item < 10**14:
                raise BadInput(f"{field} must be an array of positive integers")
            ids.append(item)
        return list(dict.fromkeys(ids))

    def cursor(self, value: str | None, field: str) -> int | None:
        return None if value is None else self.entity_id(value, field)

    def limit(self, value: str | None) -> int:
        if value is None:
            return self._s.history_default_limit
        top = self._s.history_max_limit
        if not _ID_RE.fullmatch(value) or not 1 <= int(value) <= top:
            raise BadInput(f"limit must be an integer from 1 to {top}")
        return int(value)

    def since(self, value: str | None) -> int:
        """A seq to read a chat's log after: 0 (from the oldest kept) or more."""
        value = _required(value, "since")
        if not _ID_RE.fullmatch(value):
            raise BadInput("since must be a non-negative integer")
        return int(value)

    def epoch(self, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) > EPOCH_MAX_CHARS or not _EPOCH_RE.fullmatch(value):
            raise BadInput(f"epoch must be 1-{EPOCH_MAX_CHARS} letters or digits")
        return value

    def idempotency_key(self, value: str | None, field: str = "Idempotency-Key") -> str | None:
        if value is None:
            return None
        if not _IDEMPOTENCY_KEY_RE.fullmatch(value):
            raise BadInput(f"{field} must be 1-255 visible ASCII characters")
        return value

    def session(self, user_id: str | None, token: str | None) -> tuple[int, str] | None:
        """The (user id, token) of well-formed session cookies, else None."""
        if user_id is None or token is None:
            return None
        if not _ID_RE.fullmatch(user_id) or not _TOKEN_RE.fullmatch(token):
            return None
        return int(user_id), token
