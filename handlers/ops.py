"""For operators: GET /healthz (is Redis answering?) and GET /metrics (Prometheus)."""

import functools
import ipaddress

import redis.exceptions
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from storage import Forbidden, Unavailable

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
    """This process's metrics in the Prometheus text format, for clients in
    --metrics-allow (by default loopback only): they tell how busy the
    service is and who uses it how, which is nobody else's business."""

    public_methods = ("GET",)

    def initialize(self, storage, settings, rules, metrics):
        super().initialize(storage, settings, rules)
        self.metrics = metrics

    async def get(self):
        if not _is_allowed(self.client_address(), self.config.metrics_allow):
            raise Forbidden("metrics are only served to the networks in --metrics-allow")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(generate_latest(self.metrics.registry))


def _is_allowed(address: str, networks: str) -> bool:
    """Whether a client address, as request_source gives it (an IPv6 client
    as its /64, so `::1` is `::/64`), meets one of the comma-separated networks."""
    try:
        client = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return False
    return any(client.version == network.version and client.overlaps(network) for network in _networks(networks))


@functools.cache
def _networks(text: str) -> tuple:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
