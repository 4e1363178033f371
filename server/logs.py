"""Log lines: one per event, with time, level, logger and process."""

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class OneLineFormatter(logging.Formatter):
    """Every event on one line: a traceback's (or a message's) lines joined by " | "."""

    def format(self, record: logging.LogRecord) -> str:
        return " | ".join(super().format(record).splitlines())


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.captureWarnings(True)  # warnings too, in the same format
