"""Synchronous clients through which tests look at (and empty) the database:
one redis-server, or every node of a Redis Cluster."""

import os
import time
import uuid

import redis

from server.app import cluster_url

REDIS_MODES = ("single", "cluster")
SETTLE_TIMEOUT_SECS = 10.0


def redis_mode() -> str:
    """What the suite runs against, from CHAT_TEST_REDIS: `single` (the default) or `cluster`."""
    mode = os.environ.get("CHAT_TEST_REDIS", "").strip().lower() or "single"
    if mode not in REDIS_MODES:
        raise ValueError(f"CHAT_TEST_REDIS must be one of {REDIS_MODES}, not {mode!r}")
    return mode


class ClusterInspector(redis.RedisCluster):
    """A cluster client whose server-wide commands ask every node, not one.

    The plain RedisCluster sends KEYS, INFO, PUBSUB NUMSUB, CLIENT KILL and
    CONFIG to a single node: there `keys("chat:*") == []` would look at a
    third of the data and pass without checking anything. Key commands
    (GET, HSET, ...) are routed to their slot's master as usual.
    """

    def masters(self) -> list[redis.Redis]:
        """A plain client of each master (no replicas here: every node is one)."""
        return [self.get_redis_connection(node) for node in self.get_primaries()]

    def every_node(self) -> list[redis.Redis]:
        return [self.get_redis_connection(node) for node in self.get_nodes()]

    def flushall(self, *args, **kwargs) -> bool:
        return all([node.flushall(*args, **kwargs) for node in self.masters()])

    def keys(self, pattern="*", **kwargs) -> list:
        return [key for node in self.masters() for key in node.keys(pattern, **kwargs)]

    def scan_iter(self, match=None, count=None, _type=None, **kwargs):
        for node in self.masters():
            yield from node.scan_iter(match=match, count=count, _type=_type, **kwargs)

    def dbsize(self, **kwargs) -> int:
        return sum(node.dbsize(**kwargs) for node in self.masters())

    def pubsub_numsub(self, *channels, **kwargs) -> list[tuple]:
        """Subscribers per channel over the whole cluster: a node counts only its own connections."""
        totals = dict.fromkeys(channels, 0)
        for node in self.every_node():
            for channel, count in node.pubsub_numsub(*channels, **kwargs):
                totals[channel] = totals.get(channel, 0) + count
        return list(totals.items())

    def client_kill_filter(self, *args, **kwargs) -> int:
        """Clients killed on every node, summed."""
        return sum(node.client_kill_filter(*args, **kwargs) for node in self.every_node())

    def client_pause(self, *args, **kwargs) -> bool:
        return all([node.client_pause(*args, **kwargs) for node in self.every_node()])

    def client_unpause(self, **kwargs) -> bool:
        return all([node.client_unpause(**kwargs) for node in self.every_node()])

    def config_set(self, *args, **kwargs) -> bool:
        return all([node.config_set(*args, **kwargs) for node in self.every_node()])

    def config_get(self, *args, **kwargs) -> dict:
        """The setting as every node has it; an error if the nodes disagree."""
        answers = [node.config_get(*args, **kwargs) for node in self.every_node()]
        if any(answer != answers[0] for answer in answers):
            raise AssertionError(f"the cluster's nodes disagree: {answers}")
        return answers[0]

    def info(self, *args, **kwargs) -> dict:
        """INFO of the whole cluster: numbers summed over the masters, other fields the first master's."""
        total: dict = {}
        for answer in (node.info(*args, **kwargs) for node in self.masters()):
            for field, value in answer.items():
                summable = isinstance(value, (int, float)) and not isinstance(value, bool)
                if field not in total:
                    total[field] = value
                elif summable and isinstance(total[field], (int, float)):
                    total[field] += value
        return total

    def settle_pubsub(self) -> None:
        """Returns once every message published so far has reached every node's subscribers.

        A node forwards PUBLISH to the others over the cluster bus, in order
        but after the publisher's reply: a socket opened right after a change
        could still get the change's event, which on one server it never
        does. A marker published on each master and heard on every node
        comes after everything that master published before it.
        """
        channel = f"settle:{uuid.uuid4().hex}"
        listeners = [node.pubsub() for node in self.every_node()]
        try:
            for listener in listeners:
                listener.subscribe(channel)
                _next_message(listener, "subscribe")
            markers = {node.get_connection_kwargs()["port"] for node in self.masters()}
            for node in self.masters():
                node.publish(channel, node.get_connection_kwargs()["port"])
            for listener in listeners:
                heard = {int(_next_message(listener, "message")["data"]) for _ in markers}
                assert heard == markers, (heard, markers)
        finally:
            for listener in listeners:
                listener.close()


def _next_message(listener, kind: str) -> dict:
    """The listener's next message of `kind` (subscribe, message); TimeoutError after SETTLE_TIMEOUT_SECS."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECS
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=max(0.0, deadline - time.monotonic()))
        if message is not None and message["type"] == kind:
            return message
    raise TimeoutError(f"no {kind} on {listener} within {SETTLE_TIMEOUT_SECS} s")


def settle_pubsub(client: redis.Redis) -> None:
    """On a cluster, waits until every event published so far has been delivered (see
    ClusterInspector.settle_pubsub); one server delivers before it replies, so: nothing."""
    if isinstance(client, ClusterInspector):
        client.settle_pubsub()


def kill_pubsub_connections(client: redis.Redis, timeout_secs: float = 10.0) -> int:
    """Kills the server processes' pub/sub connections, waiting (up to the timeout) for
    at least one to exist: right after an earlier kill they may still be reconnecting."""
    deadline = time.monotonic() + timeout_secs
    while (killed := client.client_kill_filter(_type="pubsub")) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed


def restart_pubsub_connections(client: redis.Redis, timeout_secs: float = 10.0) -> None:
    """Kills the server processes' pub/sub connections and returns once one is
    back: its process has then noticed the loss, and a process drops its read
    cache when it does. For a test that rewrites the data behind the servers'
    backs (FLUSHALL), which no event announces."""
    before = _pubsub_client_ids(client)
    kill_pubsub_connections(client, timeout_secs)
    deadline = time.monotonic() + timeout_secs
    while not _pubsub_client_ids(client) - before:
        if time.monotonic() > deadline:
            raise AssertionError("no pub/sub connection came back")
        time.sleep(0.01)


def _pubsub_client_ids(client: redis.Redis) -> set[tuple[int, str]]:
    nodes = client.every_node() if isinstance(client, ClusterInspector) else [client]
    return {(n, entry["id"]) for n, node in enumerate(nodes) for entry in node.client_list(_type="pubsub")}


def sync_client(url: str, **options) -> redis.Redis:
    """A client of the server at `url`, or of the cluster at a `redis+cluster://` one (decoded replies by default)."""
    options.setdefault("decode_responses", True)
    plain = cluster_url(url)
    if plain is None:
        return redis.Redis.from_url(url, **options)
    return ClusterInspector.from_url(plain, **options)


def nodes_of(client: redis.Redis) -> list[redis.Redis]:
    """A plain client of each server holding data: the one server, or each master of a cluster."""
    return client.masters() if isinstance(client, ClusterInspector) else [client]
