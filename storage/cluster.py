"""The few calls that differ between one Redis server and a Redis Cluster.

Everything else is the same code: every script touches keys
of one hash slot (see keys.py), and PUBLISH reaches subscribers on every node.
"""

import redis.asyncio


def is_cluster(client) -> bool:
    return isinstance(client, redis.asyncio.RedisCluster)


async def mget(client, names: list[str]) -> list[str | None]:
    """Values of keys that may sit in different slots: one MGET on a single
    server, one per slot (pipelined per node) on a cluster."""
    if is_cluster(client):
        return await client.mget_nonatomic(names)
    return await client.mget(names)


async def ping(client) -> None:
    """Raises unless Redis answers: on a cluster, every master must."""
    if is_cluster(client):
        await client.ping(target_nodes=redis.asyncio.RedisCluster.PRIMARIES)
    else:
        await client.ping()
