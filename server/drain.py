"""Graceful shutdown: which connections are inside a request, and closing
each one only once it is between requests."""

import asyncio
import logging
import time
import weakref

from tornado import httputil

log = logging.getLogger("chat")

DRAIN_POLL_SECS = 0.02


class Connections(httputil.HTTPServerConnectionDelegate):
    """Stands between the HTTP server and the app to know which connections
    are inside a request, so that a shutdown closes a connection only between
    requests and never drops one it has started reading.

    Tornado's `close_all_connections()` closes every connection at once,
    requests in flight included: their clients get no answer.
    """

    def __init__(self, app):
        self._app = app
        # Server connection -> the request read on it and not yet answered, or
        # None between requests; a WebSocket stays in its upgrade request until
        # it closes. Weak: a closed connection is forgotten with it.
        self._current: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._draining = False

    def start_request(self, server_conn, request_conn) -> httputil.HTTPMessageDelegate:
        # Called once the previous answer on this connection is fully written.
        self._current[server_conn] = None
        return _Watched(self._app.start_request(server_conn, request_conn),
                        lambda: self._started(server_conn, request_conn))  # fmt: skip

    def _started(self, server_conn, request_conn) -> None:
        self._current[server_conn] = request_conn
        if self._draining:
            _close_after_answer(request_conn)

    async def drain(self, grace_secs: float, each_round=lambda: None) -> None:
        """Closes every connection as soon as it is between requests, within `grace_secs`."""
        self._draining = True
        for request_conn in list(self._current.values()):
            if request_conn is not None:
                _close_after_answer(request_conn)
        deadline = time.monotonic() + grace_secs
        while True:
            each_round()
            if not self._close_idle() or time.monotonic() >= deadline:
                break
            await asyncio.sleep(DRAIN_POLL_SECS)
        left = self._open()
        if left:
            log.warning("%d connections still busy after %.1f s; closing them", len(left), grace_secs)
        for server_conn in left:
            server_conn.stream.close()

    def _close_idle(self) -> int:
        """Closes the connections waiting for a request; returns how many stay open."""
        for server_conn in self._open():
            # Not reading means a request's head has arrived and is about to
            # be handled: it is busy, though not marked yet.
            if self._current.get(server_conn) is None and server_conn.stream.reading():
                server_conn.stream.close()
        return len(self._open())

    def _open(self) -> list:
        return [conn for conn in list(self._current.keys()) if not conn.stream.closed()]


class _Watched(httputil.HTTPMessageDelegate):
    """Passes one request through to the app, telling `on_start` when its head has been read."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, on_start):
        self._inner = inner
        self._on_start = on_start

    def headers_received(self, start_line, headers):
        self._on_start()
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._inner.finish()

    def on_connection_close(self) -> None:
        self._inner.on_connection_close()


def _close_after_answer(request_conn) -> None:
    # Tornado has no public switch for this: the answer then says
    # `Connection: close` and the connection closes once it is written, so a
    # client does not send its next request on a connection about to close.
    if request_conn is not None:
        request_conn._disconnect_on_finish = True
