"""For operators: GET /healthz (is Redis answering?) and GET /metrics (Prometheus)."""

import redis.exceptions
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from storage import Unavailable

from .base import BaseHandler
from .errors import UNAVAILABLE, expected_error


class HealthHandler(BaseHandler):
    """200 while a Redis PING answers within the request's deadline, else 503."""

    public_methods = ("GET",)

    async def get(self):
        try:
            await self.storage.ping()
        except redis.exceptions.RedisError as exc:
            if expected_error(exc) is None:
                # Any refusal (a wrong password, a loading server) means down here, not a bug.
                raise Unavailable(f"redis answered PING with an error: {exc}") from exc
            raise
        self.write_json({"status": "ok", "redis": "up"})

    def write_error(self, status_code: int, **kwargs) -> None:
        expected = expected_error(kwargs.get("exc_info", (None, None, None))[1])
        if expected is None or expected[0] != 503:
            super().write_error(status_code, **kwargs)
            return
        self.set_status(503)
        self.write_json({"error": UNAVAILABLE, "redis": "down"})


class MetricsHandler(BaseHandler):
    """This process's metrics in the Prometheus text format."""

    public_methods = ("GET",)

    def initialize(self, storage, settings, rules, metrics):
        super().initialize(storage, settings, rules)
        self.metrics = metrics

    async def get(self):
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(generate_latest(self.metrics.registry))
