"""The HTTP server's guard against clients that hold connections: a cap on
open connections per process, kept below the file limit, and timeouts for
request heads, idle keep-alive connections and bodies that come too slowly.

Tornado's own accept loop logs a traceback for every `accept()` that fails
(EMFILE once the file limit is reached: megabytes of log per second, and
nobody served); here a connection past the cap is answered 503 and closed
at once, and an accept that fails pauses accepting for a moment. Nothing is
logged per refused connection: they are counted (`/metrics`), and a warning
says at most once a minute that the cap was reached.
"""

import errno
import logging
import resource
import socket
from collections import Counter

import orjson
from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .settings import Settings

log = logging.getLogger("chat.connections")

# Files the process needs besides its clients' connections: the log, the
# pub/sub connections, a cluster's extra pools, whatever libraries open.
# The Redis pool (--redis-max-connections) is added to it.
SPARE_FILES = 256
# After accept() failed for want of files (or memory): how long to stop accepting.
ACCEPT_PAUSE_SECS = 0.5
# The most connections taken from the listen queue at once, as Tornado does.
ACCEPT_BATCH = 128
WARN_EVERY_SECS = 60.0
RETRY_AFTER_SECS = 5
_HEAD_END = b"\r?\n\r?\n"  # how Tornado's HTTP1Connection finds the end of a request head
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _refusal() -> bytes:
    body = orjson.dumps({"error": "the server has too many connections, try again shortly"})
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_SECS}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


REFUSAL = _refusal()


class ConnectionStats:
    """What /metrics says of connections: how many are open, the cap, refusals, cuts."""

    def __init__(self):
        self.open = 0
        self.cap = 0
        # Connections or upgrades refused, by cap: connections, ws_per_user, ws_per_address.
        self.refused: Counter[str] = Counter(dict.fromkeys(("connections", "ws_per_user", "ws_per_address"), 0))
        # Connections closed on the server's initiative, by reason.
        self.cut: Counter[str] = Counter(dict.fromkeys(("header_timeout", "idle_timeout", "body_too_slow",
                                                        "ws_too_slow"), 0))  # fmt: skip
        self.accept_pauses = 0

    def collect(self):
        """A prometheus_client collector of these counts, read at scrape time."""
        yield GaugeMetricFamily("chat_connections_open", "TCP connections open on this process.", value=self.open)
        yield GaugeMetricFamily("chat_connections_limit", "The cap on them (--max-connections, or less).",
                                value=self.cap)  # fmt: skip
        refused = CounterMetricFamily("chat_connections_refused", "Connections (503) and WebSocket upgrades (429) "
                                      "refused at a cap, by cap.", labels=["cap"])  # fmt: skip
        for cap, count in self.refused.items():
            refused.add_metric([cap], count)
        yield refused
        cut = CounterMetricFamily("chat_connections_cut", "Connections closed because the client was too slow "
                                  "(or idle too long), by reason.", labels=["reason"])  # fmt: skip
        for reason, count in self.cut.items():
            cut.add_metric([reason], count)
        yield cut
        yield CounterMetricFamily("chat_accept_pauses", "Times accepting stopped for a moment: no file was left.",
                                  value=self.accept_pauses)  # fmt: skip


def spare_files(settings: Settings) -> int:
    return SPARE_FILES + settings.redis_max_connections


def raise_file_limit(settings: Settings) -> int:
    """Raises this process's soft file limit as far as the caps need (never past
    the hard limit); the soft limit then in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.max_connections + spare_files(settings)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the file limit from %d to %d: %s", soft, wanted, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(settings: Settings, file_limit: int | None = None) -> int:
    """Open connections allowed: --max-connections, or less when the file limit
    (the soft one now in force, by default) leaves less room beside the spare files."""
    if file_limit is None:
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = max(file_limit - spare_files(settings), file_limit // 2)
    return max(1, min(settings.max_connections, room))


class GuardedHTTPServer(HTTPServer):
    """An HTTPServer with a cap on open connections and timeouts for slow clients."""

    def initialize(self, *args, settings: Settings, stats: ConnectionStats, cap: int, **kwargs) -> None:
        super().initialize(*args, **kwargs)
        if self.ssl_options is not None:
            raise ValueError("TLS is not served here: a proxy in front terminates it")
        self.settings = settings
        self.stats = stats
        stats.cap = cap
        self._full_warning = _Throttled("%d connections open (the cap): new ones are refused with 503, "
                                        "%d so far (raise the file limit or --max-connections)")  # fmt: skip
        # Tornado waits this long for a request's head in all; the stream's own
        # timers (_GuardedStream) tell idle waiting from a head arriving.
        self.conn_params.header_timeout = settings.idle_timeout_secs + settings.header_timeout_secs
        # A backstop: _BodyWatch cuts a body first, and counts it.
        self.conn_params.body_timeout = settings.body_timeout_secs + 5

    def add_sockets(self, sockets) -> None:
        # As TCPServer.add_sockets (whose `_sockets` and `_handlers` stop() reads),
        # with an accept loop of our own (_Acceptor).
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = _Acceptor(sock, self._accepted, self.stats).stop

    def _accepted(self, connection: socket.socket, address) -> None:
        if self.stats.open >= self.stats.cap:
            self.stats.refused["connections"] += 1
            self._full_warning.log(self.stats.open, self.stats.refused["connections"])
            _turn_away(connection)
            return
        try:
            stream = _GuardedStream(connection, self, max_buffer_size=self.max_buffer_size,
                                    read_chunk_size=self.read_chunk_size)  # fmt: skip
        except OSError:
            connection.close()  # gone already
            return
        try:
            self.handle_stream(stream, address)
        except Exception:
            log.exception("could not serve a new connection")
            stream.close()

    def start_request(self, server_conn, request_conn) -> httputil.HTTPMessageDelegate:
        return _BodyWatch(super().start_request(server_conn, request_conn), request_conn, self)


def _turn_away(connection: socket.socket) -> None:
    """Answers 503 and closes, without waiting for anything."""
    try:
        connection.setblocking(False)
        try:
            # Reading what already came lets close() end with FIN, not RST
            # (which could make the client lose the answer).
            connection.recv(65536)
        except BlockingIOError:
            pass
        connection.send(REFUSAL)
    except OSError:
        pass  # the client is gone: nothing to tell
    finally:
        connection.close()


class _Acceptor:
    """Accepts connections on a listening socket; pauses a moment when accept() fails for want of files."""

    def __init__(self, sock: socket.socket, on_connection, stats: ConnectionStats):
        self._sock = sock
        self._on_connection = on_connection
        self._stats = stats
        self._loop = IOLoop.current()
        self._resume = None
        self._stopped = False
        self._warning = _Throttled("accept() failed (%s): not accepting for %.1f s, %d times so far")
        self._loop.add_handler(sock, self._accept, IOLoop.READ)

    def _accept(self, fd, events) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._stopped or self._resume is not None:
                return
            try:
                connection, address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _OUT_OF_FILES:
                    raise
                self._pause(exc)
                return
            self._on_connection(connection, address)

    def _pause(self, exc: OSError) -> None:
        self._stats.accept_pauses += 1
        self._warning.log(errno.errorcode.get(exc.errno, exc.errno), ACCEPT_PAUSE_SECS, self._stats.accept_pauses)
        self._loop.remove_handler(self._sock)
        self._resume = self._loop.call_later(ACCEPT_PAUSE_SECS, self._resumed)

    def _resumed(self) -> None:
        self._resume = None
        if not self._stopped:
            self._loop.add_handler(self._sock, self._accept, IOLoop.READ)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._resume is not None:
            self._loop.remove_timeout(self._resume)
            self._resume = None
        else:
            self._loop.remove_handler(self._sock)


class _GuardedStream(IOStream):
    """A connection's stream, counted while open, with timers for request heads.

    A new connection must send its first request's head within
    header_timeout_secs; between requests it may stay idle for
    idle_timeout_secs, and once a byte of the next head has come, the rest must
    follow within header_timeout_secs. Tornado has one timer for all of it.
    """

    def __init__(self, connection: socket.socket, server: GuardedHTTPServer, **kwargs):
        super().__init__(connection, **kwargs)
        self._server = server
        self._timer = None
        self._idle = False  # waiting for the next request, none of it here yet
        self._heads = 0
        server.stats.open += 1

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None):
        # Only HTTP1Connection reads this way here: a request's head.
        future = super().read_until_regex(regex, max_bytes)
        if not future.done() and not self.closed():
            settings = self._server.settings
            # (_read_buffer_size: bytes read and not yet handed out, e.g. a pipelined request.)
            self._idle = self._heads > 0 and self._read_buffer_size == 0
            self._start_timer(settings.idle_timeout_secs if self._idle else settings.header_timeout_secs)
            future.add_done_callback(self._head_read)
        self._heads += 1
        return future

    def _find_read_pos(self) -> int | None:
        # Tornado finds the end of a request head with a regular expression
        # over the whole buffer, again at every read: about 100 ns a byte
        # here, so a 60 kB header line cost 6 ms per read, and four clients
        # sending them took a core. Only the first max_bytes can hold the end
        # of a head, and bytes.find is memchr-fast: the same answer
        # (\r?\n\r?\n ends after the first \n followed by [\r]\n), bounded.
        if self._read_regex is None or self._read_regex.pattern != _HEAD_END or not self._read_buffer:
            return super()._find_read_pos()
        buffer = self._read_buffer
        end = len(buffer) if self._read_max_bytes is None else self._read_max_bytes + 4  # (the terminator's most)
        starts = buffer.find(b"\n\n", 0, end), buffer.find(b"\n\r\n", 0, end)
        ends = [start + size for start, size in zip(starts, (2, 3)) if start != -1]
        if ends:
            self._check_max_bytes(self._read_regex, min(ends))
            return min(ends)
        self._check_max_bytes(self._read_regex, self._read_buffer_size)
        return None

    def read_from_fd(self, buf):
        count = super().read_from_fd(buf)
        if count and self._idle:
            self._idle = False  # a head has begun: it has header_timeout_secs to arrive whole
            self._start_timer(self._server.settings.header_timeout_secs)
        return count

    def _start_timer(self, seconds: float) -> None:
        self._stop_timer()
        self._timer = self.io_loop.call_later(seconds, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self.io_loop.remove_timeout(self._timer)
            self._timer = None

    def _head_read(self, future) -> None:
        self._stop_timer()
        self._idle = False

    def _timed_out(self) -> None:
        self._timer = None
        self._server.stats.cut["idle_timeout" if self._idle else "header_timeout"] += 1
        self.close()

    def close_fd(self) -> None:
        self._stop_timer()
        self._server.stats.open -= 1
        super().close_fd()


class _BodyWatch(httputil.HTTPMessageDelegate):
    """Passes one request through, cutting its connection if the body comes too
    slowly: not whole within body_timeout_secs, or after the first
    body_grace_secs, below body_min_bytes_per_sec on average."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, request_conn, server: GuardedHTTPServer):
        self._inner = inner
        self._request_conn = request_conn
        self._server = server
        self._received = 0
        self._started = 0.0
        self._timer = None

    def headers_received(self, start_line, headers):
        if headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers:
            loop = IOLoop.current()
            self._started = loop.time()
            self._timer = loop.call_at(self._started + self._server.settings.body_grace_secs, self._check)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk):
        self._received += len(chunk)
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._stop()
        self._inner.finish()

    def on_connection_close(self) -> None:
        self._stop()
        self._inner.on_connection_close()

    def _stop(self) -> None:
        if self._timer is not None:
            IOLoop.current().remove_timeout(self._timer)
            self._timer = None

    def _check(self) -> None:
        settings = self._server.settings
        loop = IOLoop.current()
        rate, grace = settings.body_min_bytes_per_sec, settings.body_grace_secs
        elapsed = loop.time() - self._started
        if elapsed >= settings.body_timeout_secs or self._received < rate * (elapsed - grace):
            self._timer = None
            self._server.stats.cut["body_too_slow"] += 1
            self._request_conn.close()
            return
        # The moment the average would fall below the rate, unless more comes.
        due = self._started + grace + (self._received + 1) / rate
        self._timer = loop.call_at(min(due, self._started + settings.body_timeout_secs), self._check)


class _Throttled:
    """A warning logged at most once per WARN_EVERY_SECS."""

    def __init__(self, message: str):
        self._message = message
        self._next = 0.0

    def log(self, *args) -> None:
        now = IOLoop.current().time()
        if now >= self._next:
            self._next = now + WARN_EVERY_SECS
            log.warning(self._message, *args)
