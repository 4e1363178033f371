"""Acknowledged writes that wait for replicas (--redis-wait-replicas N).

Redis replicates asynchronously: a master that dies takes with it whatever
it had not sent yet. With N > 0, every write the API acknowledges is
followed by `WAIT N <ms>` on the connection that ran it. WAIT counts that
connection's writes: it returns once N replicas have the node's replication
stream up to the connection's last write (and so every earlier write of
that node too), or when the time is up. The time is what is left of the
request's deadline. Fewer than N confirmations raise Unavailable (a 503):
the write may or may not survive a failover, and a retry with the same
Idempotency-Key is safe.

The same connection, on one server: a non-transactional pipeline holds one
connection for both commands. On a cluster: a ClusterPipeline whose two
commands both name the node serving the write's key (`target_nodes`), so
that redis-py sends them together on one connection of that node; it may
not follow a redirection itself (it would send the write alone, elsewhere),
so a MOVED or ASK is followed here, the pair sent again to the new node
(a redirected write did not run).
"""

import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from . import deadline
from .errors import Unavailable

REDIRECTIONS = 3  # a slot that moved (a failover, a resharding): the pair follows it this often
# WAIT answers this long before the request's deadline, so that a missing
# replica is told apart from a Redis that does not answer.
MARGIN_MS = 20
# Errors after which the cluster client must re-read the cluster's layout.
_LAYOUT_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ClusterDownError,
                  redis.exceptions.SlotNotCoveredError)  # fmt: skip


class ReplicaWait:
    """Runs writes that must reach `replicas` replicas before they count as done."""

    def __init__(self, client, replicas: int, *, timeout_secs: float = 2.0):
        """`timeout_secs`: WAIT's time outside a request's deadline (migrations at start)."""
        self._client = client
        self.replicas = replicas
        self._timeout_secs = timeout_secs

    async def execute(self, *command, key: str, **options):
        """Runs one write (`key`: one of its keys, which picks the node on a
        cluster), then WAIT on its connection; the write's reply. Raises
        Unavailable if fewer than `replicas` replicas confirm it in time."""
        if isinstance(self._client, RedisCluster):
            reply, confirmed = await self._on_cluster(command, key, options)
        else:
            pipe = self._client.pipeline(transaction=False)
            pipe.execute_command(*command, **options)
            pipe.execute_command("WAIT", self.replicas, self._wait_ms())
            reply, confirmed = await pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(confirmed, Exception):
            raise confirmed
        if confirmed < self.replicas:
            raise Unavailable(f"{confirmed} of {self.replicas} replicas confirmed a write in time")
        return reply

    async def _on_cluster(self, command, key: str, options: dict) -> list:
        client = self._client
        await client.initialize()  # a no-op unless an error asked for the layout to be read again
        node = client.get_node_from_key(key)
        asking = False
        for _ in range(REDIRECTIONS + 1):
            pipe = client.pipeline()
            if asking:  # ASKING holds for the next command of the connection: the write
                pipe.execute_command("ASKING", target_nodes=node)
            pipe.execute_command(*command, target_nodes=node, **options)
            pipe.execute_command("WAIT", self.replicas, self._wait_ms(), target_nodes=node)
            try:
                replies = await _run(client, pipe)
            except _LAYOUT_ERRORS:
                # What redis-py's own command path does after these: the next
                # command first re-reads which node serves which slot.
                client._initialize = True
                raise
            reply = replies[-2]
            if isinstance(reply, redis.exceptions.MovedError):
                await client.nodes_manager.move_slot(reply)
                node, asking = client.get_node_from_key(key), False
            elif isinstance(reply, redis.exceptions.AskError):
                node, asking = client.get_node(host=reply.host, port=reply.port), True
                if node is None:
                    raise Unavailable(f"asked to go to an unknown node {reply.host}:{reply.port}")
            else:
                return replies[-2:]
        raise Unavailable("the write's slot kept moving")

    def _wait_ms(self) -> int:
        """What is left of the request's deadline, in ms (at least 1: WAIT 0 waits forever)."""
        left = deadline.remaining()
        secs = self._timeout_secs if left is None else left
        return max(1, int(secs * 1000) - MARGIN_MS)

    async def connected_replicas(self) -> int:
        """The fewest replicas any master has connected now (for a warning at start)."""
        if isinstance(self._client, RedisCluster):
            found = await self._client.info("replication", target_nodes=RedisCluster.PRIMARIES)
            counts = [int(info.get("connected_slaves", 0)) for info in found.values()]
            return min(counts) if counts else 0
        return int((await self._client.info("replication")).get("connected_slaves", 0))


async def _run(client, pipe) -> list:
    """Runs a pipeline without redirections, counted as one command by a
    client that limits them (server.app.WaitingRedisCluster)."""
    execute = getattr(client, "execute_pipeline", None)
    if execute is None:
        return await pipe.execute(raise_on_error=False, allow_redirections=False)
    return await execute(pipe, raise_on_error=False, allow_redirections=False)
