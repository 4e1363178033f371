"""Log lines: one per event, with time, level, logger and process, and
nothing a client sent that could be a secret."""

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
MALFORMED = "Malformed HTTP message from %s: %s"


class OneLineFormatter(logging.Formatter):
    """Every event on one line: a traceback's (or a message's) lines joined by " | "."""

    def format(self, record: logging.LogRecord) -> str:
        return " | ".join(super().format(record).splitlines())


class HideMalformedRequests(logging.Filter):
    """Tornado logs why it refused a malformed request, quoting the offending
    header line, which may be a Cookie (a token) or an Idempotency-Key: keep
    the event, drop the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == MALFORMED and len(record.args or ()) == 2:
            peer, error = record.args
            record.args = (peer, f"{type(error).__name__} (details not logged: they may quote a header)")
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    handler.addFilter(HideMalformedRequests())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.captureWarnings(True)  # warnings too, in the same format
