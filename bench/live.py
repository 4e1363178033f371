"""Live delivery CPU: deliveries per CPU-second of the chat server's process
against a bare Tornado broadcaster's, each driven by the same client process
(bench/live_clients.py), alternated in rounds."""

import dataclasses
import json
import statistics
import subprocess
import sys
import time

from . import REPO

SETTLE_SECS = 0.2  # between runs (the next run opens its sockets for a while before measuring)
OPEN_SECS_PER_SOCKET = 0.02  # this machine opens about 250 TCP connections a second; twice that time
BURST_TIMEOUT_SECS = 60.0


@dataclasses.dataclass
class Target:
    name: str
    url: str  # ws://host:port/api/ws
    pid: int  # the process whose CPU is read


@dataclasses.dataclass
class Run:
    deliveries: int
    expected: int
    cpu_secs: float
    wall_secs: float
    frame_bytes: float  # mean size of a message event as received
    errors: int  # error events the sockets got (a refused send)
    first_error: dict | None = None

    @property
    def per_cpu_sec(self) -> float:
        return self.deliveries / self.cpu_secs if self.cpu_secs > 0 else float("inf")


def run_once(target: Target, *, chat_id: int, cookies: list[str], messages: int) -> Run:
    """One burst of `messages` to every socket of `cookies`, measured on `target`'s process."""
    config = {"url": target.url, "pid": target.pid, "chat_id": chat_id, "cookies": cookies,
              "messages": messages, "timeout_secs": BURST_TIMEOUT_SECS}  # fmt: skip
    limit = 30 + len(cookies) * OPEN_SECS_PER_SOCKET + BURST_TIMEOUT_SECS
    done = subprocess.run([sys.executable, "-m", "bench.live_clients"], input=json.dumps(config), cwd=REPO,
                          capture_output=True, text=True, timeout=limit)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"live clients against {target.name} failed:\n{done.stderr[-3000:]}")
    return Run(**json.loads(done.stdout))


def compare(targets: list[Target], *, rounds: int, **burst) -> dict[str, list[Run]]:
    """Each target once per round, in turn; name -> its runs."""
    runs = {target.name: [] for target in targets}
    for _ in range(rounds):
        for target in targets:
            time.sleep(SETTLE_SECS)
            runs[target.name].append(run_once(target, **burst))
    return runs


def median_rate(runs: list[Run]) -> float:
    """Median deliveries per CPU-second over the runs."""
    return statistics.median(run.per_cpu_sec for run in runs)


def describe(runs: list[Run]) -> str:
    """What went wrong in the runs, or "" if every event reached every socket."""
    missing = sum(run.expected - run.deliveries for run in runs)
    errors = sum(run.errors for run in runs)
    if not missing and not errors:
        return ""
    first = next((run.first_error for run in runs if run.first_error), None)
    return f"INCOMPLETE: {missing} deliveries missing, {errors} error events" + (f" (first: {first})" if first else "")
