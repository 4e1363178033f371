"""The local Redis Cluster (server/cluster_redis.py) that the cluster test mode
runs on: real masters sharing every slot, reached through redis-py's RedisCluster."""

import socket
import time

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from server import cluster_redis
from server.cluster_redis import HASH_SLOTS, LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = LocalCluster(str(tmp_path_factory.mktemp("cluster")))
    started.start()
    yield started
    started.stop()


def node(port: int) -> redis.Redis:
    """A plain client of one node, which answers MOVED for keys it does not hold."""
    return redis.Redis("127.0.0.1", port, decode_responses=True)


def slot_ranges(cluster) -> dict[int, list[tuple[int, int]]]:
    """Port of each master -> the slot ranges it serves, as the cluster itself reports."""
    with node(cluster.ports[0]) as client:
        slots = client.execute_command("CLUSTER SLOTS")
    owners: dict[int, list[tuple[int, int]]] = {}
    for first, last, primary, *_replicas in slots:
        owners.setdefault(int(primary[1]), []).append((first, last))
    return owners


def tag_on(ranges: list[tuple[int, int]]) -> str:
    """A hash tag whose slot one of `ranges` holds."""
    for n in range(100_000):
        if any(first <= key_slot(f"{n}".encode()) <= last for first, last in ranges):
            return str(n)
    raise AssertionError("no tag found")


def owner_of(cluster, key: str) -> int:
    """Port of the master that holds `key`."""
    slot = key_slot(key.encode())
    return next(port for port, ranges in slot_ranges(cluster).items() if any(a <= slot <= b for a, b in ranges))


def client_of(cluster) -> RedisCluster:
    # redis-py has no redis+cluster:// scheme: the service maps it to redis:// for RedisCluster.
    assert cluster.url == f"redis+cluster://127.0.0.1:{cluster.ports[0]}"
    return RedisCluster.from_url(f"redis://127.0.0.1:{cluster.ports[0]}", decode_responses=True)


def test_three_masters_share_every_slot(cluster):
    owners = slot_ranges(cluster)
    assert sorted(owners) == sorted(cluster.ports)
    assert sorted(port for _, port in cluster.startup_nodes) == sorted(cluster.ports)
    covered = sorted(slot for ranges in owners.values() for first, last in ranges for slot in (first, last))
    assert sum(last - first + 1 for ranges in owners.values() for first, last in ranges) == HASH_SLOTS
    assert covered[0] == 0 and covered[-1] == HASH_SLOTS - 1
    for port in cluster.ports:
        with node(port) as client:
            assert client.execute_command("CLUSTER INFO")["cluster_state"] == "ok"


@pytest.mark.gen_test(timeout=30)
async def test_keys_written_through_the_cluster_land_on_every_master(cluster):
    cluster.flushall()
    tags = {port: tag_on(ranges) for port, ranges in slot_ranges(cluster).items()}
    async with client_of(cluster) as client:
        for port, tag in tags.items():
            await client.hset(f"user:{{{tag}}}", mapping={"name": f"n{port}"})
        for port, tag in tags.items():
            assert await client.hget(f"user:{{{tag}}}", "name") == f"n{port}"
    for port, tag in tags.items():
        with node(port) as client:
            assert client.hget(f"user:{{{tag}}}", "name") == f"n{port}"  # stored on that master itself
            assert client.dbsize() == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_script_runs_over_two_keys_of_one_slot_and_refuses_two_slots(cluster):
    cluster.flushall()
    script_source = """
    redis.call('HSET', KEYS[1], 'title', ARGV[1])
    redis.call('ZADD', KEYS[2], 1, ARGV[2])
    return {redis.call('HGET', KEYS[1], 'title'), redis.call('ZCARD', KEYS[2])}
    """
    async with client_of(cluster) as client:
        script = client.register_script(script_source)
        assert await script(keys=["chat:{7}", "chat:{7}:members"], args=["hello", 42]) == ["hello", 1]
        assert await client.zrange("chat:{7}:members", 0, -1) == ["42"]
        assert key_slot(b"chat:{7}") != key_slot(b"chat:{8}:members")
        with pytest.raises(RedisClusterException):
            await script(keys=["chat:{7}", "chat:{8}:members"], args=["x", 1])
    with node(owner_of(cluster, "chat:{7}")) as client:
        assert client.hget("chat:{7}", "title") == "hello"


def test_flushall_empties_every_master(cluster):
    for port, ranges in slot_ranges(cluster).items():
        with node(port) as client:
            client.set(f"k:{{{tag_on(ranges)}}}", 1)
    cluster.flushall()
    for port in cluster.ports:
        with node(port) as client:
            assert client.dbsize() == 0


def test_a_cluster_formed_without_redis_cli_works_and_stop_ends_every_node(tmp_path):
    formed = LocalCluster(str(tmp_path), use_redis_cli=False)
    formed.start()
    try:
        processes = list(formed.processes)
        assert len(processes) == 3
        assert sorted(slot_ranges(formed)) == sorted(formed.ports)  # each master serves slots
        with redis.RedisCluster.from_url(f"redis://127.0.0.1:{formed.ports[0]}", decode_responses=True) as client:
            for port, ranges in slot_ranges(formed).items():
                client.set(f"k:{{{tag_on(ranges)}}}", port)
            assert client.dbsize(target_nodes=redis.RedisCluster.PRIMARIES) == 3  # summed over the masters
    finally:
        formed.stop()
    assert all(process.poll() is not None for process in processes)
    for port in formed.ports:
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))


def test_a_port_taken_before_its_node_binds_it_is_given_up_for_another(tmp_path, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offers = iter([[taken]])  # the first choice is already in use; later ones are real
        real = cluster_redis.free_cluster_ports
        monkeypatch.setattr(cluster_redis, "free_cluster_ports", lambda count: next(offers, None) or real(count))
        single = LocalCluster(str(tmp_path), masters=1)
        single.start()
        try:
            assert single.ports != [taken]
            with node(single.ports[0]) as client:
                assert client.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
                assert client.set("k", 1)  # one master serves every slot
        finally:
            single.stop()


def test_replicas_formed_without_redis_cli_follow_their_masters(tmp_path):
    formed = LocalCluster(str(tmp_path), masters=1, replicas=1, use_redis_cli=False)
    formed.start()
    try:
        (master,) = formed.master_ports()
        assert formed.replicas_of(master) == [port for port in formed.ports if port != master]
        with node(master) as client:
            client.set("k", "v")
            assert client.execute_command("WAIT", 1, 5000) == 1
        with node(formed.replicas_of(master)[0]) as replica:
            replica.execute_command("READONLY")  # else a cluster replica answers MOVED
            assert replica.get("k") == "v"  # copied, and read where it is kept
    finally:
        formed.stop()


def test_a_killed_master_is_replaced_by_its_replica_and_rejoins_as_a_replica(tmp_path):
    cluster = LocalCluster(str(tmp_path), masters=3, replicas=1)
    cluster.start()
    try:
        states = cluster.nodes()
        assert len(states) == 6 and sorted(cluster.master_ports()) == sorted(s.port for s in states if s.slots)
        assert all(len(cluster.replicas_of(port)) == 1 for port in cluster.master_ports())
        victim = cluster.master_of("chat:{7}")
        assert victim == cluster.master_of(key_slot(b"chat:{7}"))
        (heir,) = cluster.replicas_of(victim)
        with node(victim) as client:
            client.set("chat:{7}", "kept")
            assert client.execute_command("WAIT", 1, 5000) == 1  # the replica has it before the kill

        cluster.kill(victim)
        started = time.monotonic()
        cluster.wait_until_ok(timeout_secs=cluster.node_timeout_ms / 1000 + 20)
        assert time.monotonic() - started < cluster.node_timeout_ms / 1000 + 20
        assert cluster.master_of("chat:{7}") == heir
        with node(heir) as client:
            assert client.get("chat:{7}") == "kept"  # served by the promoted replica itself

        cluster.restart(victim)
        cluster.wait_until_ok()
        rejoined = next(state for state in cluster.nodes() if state.port == victim)
        assert (rejoined.role, rejoined.master_port, rejoined.slots) == ("replica", heir, ())
        with node(victim) as replica:
            replica.execute_command("READONLY")
            assert replica.get("chat:{7}") == "kept"  # copied back from the new master
    finally:
        cluster.stop()
