"""The few calls that differ between one Redis server and a Redis Cluster.

Everything else is the same code: every script touches keys
of one hash slot (see keys.py), and PUBLISH reaches subscribers on every node.
"""

from collections.abc import Awaitable, Callable, Iterable

import redis.asyncio
from redis.exceptions import NoScriptError

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


def by_slot(client, items: Iterable, key_of: Callable[[object], str]) -> list[list]:
    """`items` grouped by the hash slot of `key_of(item)`, for scripts whose
    keys must share a slot on a cluster; on a single server, one group."""
    if not is_cluster(client):
        return [list(items)]
    groups: dict[int, list] = {}
    for item in items:
        groups.setdefault(client.keyslot(key_of(item)), []).append(item)
    return list(groups.values())


async def run_per_group(client, script, key_groups: list[list[str]], args: list = ()) -> list:
    """Runs `script` (a registered script) with `args` once per group of keys,
    each group in one slot (see by_slot); their flat replies, joined.
    On a cluster, one pipeline: one round trip per node, and one command in
    flight for WaitingRedisCluster (its `execute_pipeline`)."""
    if len(key_groups) == 1:
        return await script(keys=key_groups[0], args=list(args))
    try:
        return await _pipelined(client, script, key_groups, args)
    except NoScriptError:
        await client.script_load(script.script)  # on every master (a restart, SCRIPT FLUSH)
        return await _pipelined(client, script, key_groups, args)


async def _pipelined(client, script, key_groups: list[list[str]], args) -> list:
    pipe = client.pipeline()
    for names in key_groups:
        pipe.execute_command("EVALSHA", script.sha, len(names), *names, *args)  # routed by its keys' slot
    execute = getattr(client, "execute_pipeline", None)
    replies = await (execute(pipe) if execute else pipe.execute())
    return [value for reply in replies for value in reply]


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


_NODE_OPTIONS = (
    "connection_class", "username", "password", "credential_provider", "decode_responses", "encoding",
    "socket_connect_timeout", "socket_timeout", "socket_keepalive", "socket_keepalive_options", "retry",
)  # fmt: skip


def node_client(client, node) -> redis.asyncio.Redis:
    """A plain client of one cluster node, with the cluster client's connection
    options (for a shard channel's pub/sub connection, which must talk to
    the node owning the channel's slot)."""
    options = client.get_connection_kwargs()
    chosen = {k: v for k, v in options.items() if k in _NODE_OPTIONS or k.startswith("ssl_")}
    pool = redis.asyncio.ConnectionPool(host=node.host, port=node.port, max_connections=2, **chosen)
    return redis.asyncio.Redis(connection_pool=pool)


async def supports_shard_channels(client) -> bool:
    """Sharded pub/sub (SPUBLISH, SSUBSCRIBE): a Redis 7+ cluster."""
    if not is_cluster(client):
        return False
    info = await client.info("server", target_nodes=redis.asyncio.RedisCluster.RANDOM)
    return int(str(info["redis_version"]).split(".")[0]) >= 7
