"""The process entry: settings, Redis (embedded or given), the HTTP server, signals."""

import asyncio
import logging
import signal

from .app import make_app, make_http_server, make_redis, make_storage
from .embedded_redis import EmbeddedRedis
from .settings import Settings, load_settings

log = logging.getLogger("chat")


async def serve(settings: Settings, redis_url: str) -> None:
    """Serves the API until SIGINT or SIGTERM."""
    client = make_redis(redis_url, settings)
    await client.ping()  # fail at start, not on the first request
    server = make_http_server(make_app(settings, make_storage(client, settings)), settings)
    server.listen(settings.port, settings.host)
    log.info("serving on http://%s:%d (redis %s)", settings.host, settings.port, redis_url)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("shutting down")
    server.stop()
    await server.close_all_connections()
    await client.aclose()


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    embedded = None
    redis_url = settings.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = embedded.start()
    try:
        asyncio.run(serve(settings, redis_url))
    finally:
        if embedded is not None:
            embedded.stop()
