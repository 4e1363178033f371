"""The few calls that differ between one Redis server and a Redis Cluster.

Everything else is the same code: every script touches keys
of one hash slot (see keys.py), and PUBLISH reaches subscribers on every node.
"""

from collections.abc import Awaitable, Callable

import redis.asyncio

from .errors import Unavailable

# Ids a creation tries before giving up: more than one only after a failover.
ID_ATTEMPTS = 10


def is_cluster(client) -> bool:
    return isinstance(client, redis.asyncio.RedisCluster)


async def mget(client, names: list[str]) -> list[str | None]:
    """Values of keys that may sit in different slots: one MGET on a single
    server, one per slot (pipelined per node) on a cluster."""
    if is_cluster(client):
        return await client.mget_nonatomic(names)
    return await client.mget(names)


async def fresh_id(client, counter_key: str, create: Callable[[int], Awaitable[bool]]) -> int:
    """The next id from a counter that `create(id)` accepts (it answers False
    for a taken id). On a cluster a failover can take a counter back
    (replication is asynchronous) while what it handed out survives."""
    for _ in range(ID_ATTEMPTS):
        new_id = await client.incr(counter_key)
        if await create(new_id):
            return new_id
    raise Unavailable(f"could not find a free id in {counter_key}")


async def ping(client) -> None:
    """Raises unless Redis answers: on a cluster, every master must."""
    if is_cluster(client):
        await client.ping(target_nodes=redis.asyncio.RedisCluster.PRIMARIES)
    else:
        await client.ping()
