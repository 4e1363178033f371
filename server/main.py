"""The process entry: settings, Redis (embedded or given), the HTTP server, signals.

With `--workers N` (N > 1) this process is a supervisor: it starts the
embedded Redis if needed, then N worker processes of `run.py` that share the
port through SO_REUSEPORT, each with its own Redis connections, and passes
SIGINT/SIGTERM on to them.

Shutting down (SIGINT or SIGTERM): stop listening, close WebSockets (1001),
let every request already read finish (at most `shutdown_grace_secs`), closing
each connection once it has nothing in flight, then close Redis.
"""

import asyncio
import logging
import signal
import subprocess
import sys
import time

from tornado.netutil import bind_sockets

from storage.migrations import SCHEMA_VERSION

from . import loop
from .app import make_app, make_http_server, make_redis, make_storage
from .connection_limits import raise_file_limit
from .drain import Connections
from .embedded_redis import REPO_ROOT, EmbeddedRedis
from .hub import Hub
from .logs import configure_logging
from .settings import Settings, load_settings

log = logging.getLogger("chat")

WORKER_RESTART_DELAY_SECS = 1.0
# How often the embedded redis-server is checked (and restarted if it died).
EMBEDDED_CHECK_SECS = 1.0


async def serve(settings: Settings, redis_url: str, embedded: EmbeddedRedis | None = None) -> None:
    """Serves the API until SIGINT or SIGTERM, keeping `embedded` alive."""
    client = make_redis(redis_url, settings)
    async with asyncio.timeout(settings.redis_timeout_secs * 5):
        await client.ping()  # fail at start, not on the first request
        storage = make_storage(client, settings)
        await storage.prepare()
        wanted = settings.redis_wait_replicas
        if wanted and (found := await storage.replicas.connected_replicas()) < wanted:
            # Not refused: the replicas may be on their way back (a restart during an incident).
            log.warning("--redis-wait-replicas %d, but a master has %d replicas connected: writes answer 503"
                        " until enough are", wanted, found)  # fmt: skip
    # Not under the start-up timeout: on a large database it takes its time.
    if (found := await storage.upgrade()) < SCHEMA_VERSION:
        log.info("data upgraded from schema %d to %d", found, SCHEMA_VERSION)
    hub = Hub(
        storage, redis_timeout_secs=settings.redis_timeout_secs, presence_ttl_secs=settings.presence_ttl_secs,
        fanout_slice_sockets=settings.fanout_slice_sockets,
    )  # fmt: skip
    storage.start()
    file_limit = raise_file_limit(settings)
    app = make_app(settings, storage, hub)
    connections = Connections(app)
    server = make_http_server(connections, settings, app.settings["connection_stats"])
    if server.stats.cap < settings.max_connections:
        log.warning("at most %d connections: the file limit (%d) leaves no room for --max-connections %d",
                    server.stats.cap, file_limit, settings.max_connections)  # fmt: skip
    server.add_sockets(bind_sockets(settings.port, settings.host, reuse_port=settings.reuse_port))
    log.info("serving on http://%s:%d (redis %s)", settings.host, settings.port, redis_url)

    running = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = running.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        running.add_signal_handler(signum, _set_once, received, signum)
    watchdog = running.create_task(_keep_alive(embedded)) if embedded is not None else None
    signum = await received  # a second signal changes nothing: the grace period bounds the wait
    if watchdog is not None:
        watchdog.cancel()

    log.info("%s: shutting down, finishing requests in flight (at most %.1f s)",
             signum.name, settings.shutdown_grace_secs)  # fmt: skip
    server.stop()  # no new connections
    # Every round, since a socket whose upgrade was in flight may open meanwhile.
    await connections.drain(settings.shutdown_grace_secs, each_round=hub.close_all)
    await hub.stop()  # its users' watchers hear at once that they went offline
    await app.settings["socket_limits"].stop()
    await storage.stop()
    await client.aclose()
    log.info("stopped")


async def _keep_alive(embedded: EmbeddedRedis) -> None:
    """Restarts the embedded redis-server whenever it dies."""
    while True:
        await asyncio.sleep(EMBEDDED_CHECK_SECS)
        await asyncio.to_thread(embedded.revive)


def _set_once(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def supervise(settings: Settings, redis_url: str, argv: list[str], embedded: EmbeddedRedis | None = None) -> None:
    """Runs `settings.workers` worker processes until SIGINT or SIGTERM,
    keeping them and `embedded` alive."""
    command = [sys.executable, str(REPO_ROOT / "run.py"), *argv,
               "--workers", "1", "--reuse-port", "true", "--redis-url", redis_url]  # fmt: skip
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    workers = [subprocess.Popen(command) for _ in range(settings.workers)]
    log.info("supervising %d workers on port %d", len(workers), settings.port)
    while not stopping:
        time.sleep(0.2)
        if embedded is not None:
            embedded.revive()
        for index, worker in enumerate(workers):
            if worker.poll() is not None and not stopping:
                log.error("worker %d exited with %s; restarting it", worker.pid, worker.returncode)
                time.sleep(WORKER_RESTART_DELAY_SECS)
                workers[index] = subprocess.Popen(command)
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    settings = load_settings(argv)
    configure_logging(settings.log_level, settings.log_lines_per_sec)
    embedded = None
    redis_url = settings.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = embedded.start()
    try:
        if settings.workers > 1:
            supervise(settings, redis_url, argv, embedded)
        else:
            loop.run(serve(settings, redis_url, embedded))
    finally:
        if embedded is not None:
            embedded.stop()
