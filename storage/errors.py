"""The storage layer's own exceptions; the HTTP layer maps each to a status."""


class StorageError(Exception):
    """Base class: the message is safe to show to the client."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(StorageError):
    """The chat, message or user does not exist."""


class Forbidden(StorageError):
    """The object exists but the caller may not touch it."""


class Conflict(StorageError):
    """The change clashes with existing state (duplicate title, existing member)."""


class NameTaken(StorageError):
    """Registering or renaming to a user name someone else holds."""


class Unavailable(StorageError):
    """Redis did not answer within the request's deadline."""


class RateLimited(StorageError):
    """Too many attempts; allowed again after `retry_after_secs`."""

    def __init__(self, message: str, retry_after_secs: int):
        super().__init__(message)
        self.retry_after_secs = retry_after_secs


class KeyReused(StorageError):
    """An idempotency key sent again with a different request."""


class BeyondNewest(StorageError):
    """A read marker moved past the chat's newest message (HTTP 400)."""


class Gone(StorageError):
    """A chat's log cannot serve a catch-up (another epoch, or events trimmed):
    the client must re-read the chat's history."""


class Busy(RateLimited):
    """A resource shared with other users is full for now (bcrypt's queue, the
    caller's share of Redis): HTTP 503, with `retry_after_secs` as a 429 has."""
