"""Which exceptions are answers rather than faults, and what each answers.

Shared by the HTTP handlers and the WebSocket, so a refused send reads the
same on both.
"""

import http

import redis.exceptions
from tornado.web import HTTPError

from storage import (
    BeyondNewest, Busy, Conflict, Forbidden, Gone, KeyReused, NameTaken, NotFound, RateLimited, Unavailable,
)  # fmt: skip

from .validation import BadInput

UNAVAILABLE = "storage is unavailable, try again shortly"

# (exception class, status, message or None to use the exception's own).
_EXPECTED_ERRORS = (
    (BadInput, 400, None),
    (NameTaken, 400, None),
    (BeyondNewest, 400, None),
    (NotFound, 404, None),
    (Forbidden, 403, None),
    (Conflict, 409, None),
    (Gone, 410, None),
    (KeyReused, 422, None),
    (Busy, 503, None),  # (a RateLimited: before it)
    (RateLimited, 429, None),
    (Unavailable, 503, UNAVAILABLE),
    (redis.exceptions.ConnectionError, 503, UNAVAILABLE),
    (redis.exceptions.TimeoutError, 503, UNAVAILABLE),
    (redis.exceptions.ReadOnlyError, 503, UNAVAILABLE),
    # Redis Cluster: a master down or failing over, slots moving or not served.
    (redis.exceptions.ClusterError, 503, UNAVAILABLE),
    (redis.exceptions.TryAgainError, 503, UNAVAILABLE),
    (redis.exceptions.SlotNotCoveredError, 503, UNAVAILABLE),
    (redis.exceptions.OutOfMemoryError, 503, "storage is full, try again later"),
)
_STATUS_MESSAGES = {
    401: "authentication required: log in to get user_id and token cookies",
    404: "no such endpoint",
    405: "method not allowed",
    413: "request body too large",
    500: "internal server error",
}


def expected_error(exc: BaseException | None) -> tuple[int, str] | None:
    """(status, message) for an exception that is an answer, else None."""
    for kind, status, message in _EXPECTED_ERRORS:
        if isinstance(exc, kind):
            return status, message or exc.message
    return None


def status_message(status_code: int, exc: BaseException | None = None) -> str:
    """The message for a bare status (one Tornado raised, or ours without text)."""
    if status_code in _STATUS_MESSAGES:
        return _STATUS_MESSAGES[status_code]
    if isinstance(exc, HTTPError) and exc.log_message and status_code == 400:
        return "bad request: " + (exc.log_message % exc.args if exc.args else exc.log_message)
    try:
        return http.HTTPStatus(status_code).phrase.lower()
    except ValueError:
        return "error"
