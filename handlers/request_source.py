"""Where a request comes from: the client's address (for rate limits) and
whether a browser sent it from another site (for refusing cross-site writes)."""

import functools
import ipaddress
import urllib.parse

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class RequestSource:
    """Reads a request's origin and client address under one Settings."""

    def __init__(self, settings):
        self._proxies = [ipaddress.ip_network(part.strip(), strict=False)
                         for part in settings.trusted_proxies.split(",") if part.strip()]  # fmt: skip
        self._allowed_origins = {
            _origin_host(part.strip()) for part in settings.allowed_origins.split(",") if part.strip()
        }

    def client_address(self, request) -> str:
        """The client's address, as a rate limit counts it.

        The connection's peer, unless that is a trusted proxy: then the
        nearest untrusted hop in X-Forwarded-For (hops a client wrote itself
        sit further left and are never reached). IPv6 clients are counted by
        their /64, which is what one subscriber usually holds.
        """
        address = _parse(request.remote_ip)
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        while address is not None and self._is_proxy(address) and hops:
            address = _parse(hops.pop())
        if address is None:
            return request.remote_ip or "unknown"
        if address.version == 6:
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    def is_cross_site(self, request) -> bool:
        """Whether a browser says the request comes from another site.

        `Sec-Fetch-Site: cross-site`, or an Origin whose host is neither this
        service's Host nor an allowed origin (`Origin: null` included).
        Clients that send neither header (curl, bots) are not browsers
        carrying someone else's cookies, and pass.
        """
        if request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
            return True
        origin = request.headers.get("Origin")
        if origin is None:
            return False
        host = _origin_host(origin)
        return host is None or (host != _normal_host(request.host) and host not in self._allowed_origins)

    def _is_proxy(self, address) -> bool:
        return any(address in network for network in self._proxies)


@functools.cache
def request_source(settings) -> RequestSource:
    """The RequestSource of a Settings, parsed once."""
    return RequestSource(settings)


def _parse(text: str | None):
    """An address, also from the `1.2.3.4:5678` and `[2001:db8::1]:5678` forms some proxies write."""
    text = (text or "").strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _origin_host(origin: str) -> str | None:
    """`host[:port]` of an origin, without a default port; None if it is not one."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if port is None or str(port) == _DEFAULT_PORTS[parts.scheme] else f"{host}:{port}"


def _normal_host(host: str) -> str:
    """A Host header without a default port, lower case."""
    host = host.strip().lower()
    for port in ("80", "443"):
        if host.endswith(":" + port):
            return host[: -len(port) - 1]
    return host
