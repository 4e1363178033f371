"""The service under test, started the README way, and the processes a fault hits."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECS = 60
STOP_TIMEOUT_SECS = 30
# Flags for a load test (API-DECISIONS: rate limits off for load tests), and
# a cheap bcrypt so that registering the simulated users takes no minutes.
LOAD_TEST_FLAGS = ("--rate-limits", "off", "--bcrypt-cost", "4", "--log-level", "warning")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> list[int]:
    """The process ids of `pid`'s children (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Service:
    """`run.py --workers N` on a free port: on its embedded Redis under
    `data_dir`, or on `redis_url` (a cluster the caller started)."""

    def __init__(self, data_dir: Path, *, workers: int = 2, redis_url: str = "", extra_args: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.workers = workers
        self.redis_url = redis_url
        self.extra_args = extra_args
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def embedded_socket(self) -> str:
        return str(self.data_dir / "redis.sock")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "run.py", "--port", str(self.port), "--workers", str(self.workers),
                   "--data-dir", str(self.data_dir), *LOAD_TEST_FLAGS, *self.extra_args]  # fmt: skip
        if self.redis_url:
            command += ["--redis-url", self.redis_url]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    async def wait_healthy(self, timeout: float = START_TIMEOUT_SECS) -> float:
        """Until /healthz answers 200 from every worker there is; seconds waited."""
        started = time.monotonic()
        client = AsyncHTTPClient()
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"run.py exited with {self.process.returncode}; see {self.log_path}")
            try:
                if len(self.worker_pids()) == self.workers:
                    await client.fetch(f"{self.base_url}/healthz", request_timeout=2)
                    return time.monotonic() - started
            except (HTTPClientError, OSError):
                pass
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the service was not healthy within {timeout:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.1)

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        return [pid for pid in children(self.process.pid) if "run.py" in command_line(pid)]

    def redis_clients(self) -> list[aioredis.Redis]:
        """One client per Redis node of the embedded server (the caller closes them)."""
        return [aioredis.Redis(unix_socket_path=self.embedded_socket, socket_timeout=2)]

    def stop(self) -> None:
        """SIGTERM: the supervisor stops its workers and the embedded Redis."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in self.worker_pids():
            os.kill(pid, signal.SIGKILL)


async def redis_pid(client: aioredis.Redis) -> int:
    return int((await client.info("server"))["process_id"])
