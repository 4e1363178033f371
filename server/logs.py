"""Log lines: one per event, with time, level, logger and process, nothing
a client sent that could be a secret, and a bounded number a second of each
kind, so that a flood of bad requests cannot flood the disk."""

import atexit
import logging
import threading
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
MALFORMED = "Malformed HTTP message from %s: %s"
SUPPRESSED = "%d similar lines suppressed (over %d a second), the first: %s"
ACCESS_LOGGER = "tornado.access"
# Kinds of line counted at once: past this (messages that differ by what a
# client sent), new kinds share one count.
MAX_KINDS = 2000


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


class _Window:
    """One kind of line in its current second."""

    __slots__ = ("start", "passed", "suppressed", "sample")

    def __init__(self, start: float, sample: logging.LogRecord):
        self.start = start
        self.passed = 0
        self.suppressed = 0
        self.sample = sample  # the first line of the kind, to name it in the report


class RepeatLimit(logging.Filter):
    """At most `per_sec` lines a second of each kind: the same logger, level
    and message template (for the access log, the same status). Lines past
    that are counted, and when their second is over one line says how many
    were left out. Successful requests' access lines are not limited (a
    --log-level of warning drops them)."""

    def __init__(self, per_sec: int, window_secs: float = 1.0):
        super().__init__()
        self._per_sec = per_sec
        self._window_secs = window_secs
        self._windows: dict[tuple, _Window] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ACCESS_LOGGER and record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        with self._lock:
            ended = self._prune(now) if len(self._windows) >= MAX_KINDS else []
            kind = _kind(record) if len(self._windows) < MAX_KINDS else ("*", record.levelno)
            window = self._windows.get(kind)
            if window is None or now - window.start >= self._window_secs:
                if window is not None and window.suppressed:
                    ended.append(window)
                window = self._windows[kind] = _Window(now, record)
            if window.passed < self._per_sec:
                window.passed += 1
                passed = True
            else:
                window.suppressed += 1
                passed = False
                if self._timer is None:
                    self._start_timer()
        for window in ended:
            self._report(window)  # outside the lock: the report passes through this filter too
        return passed

    def flush(self, *, everything: bool = False) -> None:
        """Reports the kinds whose second is over with lines left out (run by a
        timer); `everything`: every kind with lines left out (at exit)."""
        now = time.monotonic()
        with self._lock:
            self._timer = None
            ended = self._prune(float("inf") if everything else now)
            if any(window.suppressed for window in self._windows.values()):
                self._start_timer()
        for window in ended:
            self._report(window)

    def _prune(self, now: float) -> list[_Window]:
        """Forgets the windows that are over; those with lines left out, to report."""
        over = [kind for kind, window in self._windows.items() if now - window.start >= self._window_secs]
        ended = [self._windows.pop(kind) for kind in over]
        return [window for window in ended if window.suppressed]

    def _report(self, window: _Window) -> None:
        """One line, through the same logger at the same level: how many lines like the window's were left out."""
        sample = window.sample
        logging.getLogger(sample.name).log(
            sample.levelno, SUPPRESSED, window.suppressed, self._per_sec, _first_line(sample)
        )

    def _start_timer(self) -> None:
        self._timer = threading.Timer(self._window_secs, self.flush)
        self._timer.daemon = True
        self._timer.start()


def _first_line(record: logging.LogRecord) -> str:
    """The message of a line (which was written: the first of its kind), shortened."""
    try:
        return record.getMessage()[:200]
    except Exception:  # a template its arguments do not fit: logging reports that itself
        return str(record.msg)[:200]


def _kind(record: logging.LogRecord) -> tuple:
    """What makes lines "the same": logger, level and template; for the access log, the status too."""
    if record.name == ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) > 2:
        return record.name, record.levelno, record.msg, record.args[2]
    return record.name, record.levelno, str(record.msg)


def configure_logging(level: str, lines_per_sec: int = 10) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    handler.addFilter(HideMalformedRequests())
    repeat_limit = RepeatLimit(lines_per_sec)
    handler.addFilter(repeat_limit)
    atexit.register(repeat_limit.flush, everything=True)  # before logging's own exit hook, registered earlier
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.captureWarnings(True)  # warnings too, in the same format
