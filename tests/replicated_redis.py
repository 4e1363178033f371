"""Redis with replicas for the tests of issue 14: a master and one replica of
it (`replicaof`), or, in cluster mode, a LocalCluster with a replica per master.
Both answer the same questions: which master holds a key, its replicas, the
process of each node."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from server.cluster_redis import LocalCluster
from server.embedded_redis import find_redis_server

from .processes import free_port
from .redis_clients import redis_mode

START_TIMEOUT_SECS = 30


def replicated_redis(data_dir: str):
    """A started master-and-replica pair, or a cluster of three such pairs in cluster mode."""
    if redis_mode() == "cluster":
        started = LocalCluster(data_dir, masters=3, replicas=1)
    else:
        started = ReplicaPair(data_dir)
    started.start()
    return started


def node(port: int) -> redis.Redis:
    """A plain client of one node; on a cluster replica, allowed to read (READONLY)."""
    client = redis.Redis("127.0.0.1", port, decode_responses=True, socket_timeout=5)
    with contextlib.suppress(redis.exceptions.ResponseError):  # not a cluster node
        client.execute_command("READONLY")
    return client


@contextlib.contextmanager
def stopped(topology, port: int):
    """The node SIGSTOPped for the duration of the body (alive to the kernel, silent to everyone)."""
    process = topology.processes[topology.ports.index(port)]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


@contextlib.contextmanager
def cut_off(topology, replica: int):
    """The replica stopped (SIGSTOP) and its master's link to it closed for
    the duration of the body: what the master writes meanwhile goes nowhere
    but its backlog. (Stopped alone, the replica would still find in its
    socket's kernel buffer what the master sent while it was stopped.)"""
    (master,) = [state for state in topology.master_ports() if replica in topology.replicas_of(state)]
    with stopped(topology, replica):
        with node(master) as client:
            client.client_kill_filter(_type="replica")
        yield


def wait_link_up(port: int, timeout_secs: float = START_TIMEOUT_SECS) -> None:
    """Until the replica on `port` has loaded its master's data and follows it live."""
    deadline = time.monotonic() + timeout_secs
    while True:
        with contextlib.suppress(redis.exceptions.RedisError), node(port) as client:
            if client.info("replication").get("master_link_status") == "up":
                return
        assert time.monotonic() < deadline, f"replica {port} never caught up"
        time.sleep(0.05)


class ReplicaPair:
    """A redis-server master and one replica on loopback, nothing persisted.
    Shaped like LocalCluster where the tests use it: `url`, `ports`,
    `processes`, `master_of(key)`, `replicas_of(port)`, `master_ports()`,
    `kill(port)`; and `promote(port)`, which a cluster does by itself."""

    def __init__(self, data_dir: str):
        self.data_dir = Path(data_dir)
        self.ports = [free_port(), free_port()]
        self.processes: list[subprocess.Popen] = []
        self.master = self.ports[0]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.master}"

    def start(self) -> str:
        master, replica = self.ports
        self.processes = [self._popen(master), self._popen(replica, "--replicaof", "127.0.0.1", str(master))]
        wait_link_up(replica)
        return self.url

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a test that failed while it was stopped
            process.kill()
            process.wait()

    def master_of(self, key: str | int) -> int:
        return self.master

    def master_ports(self) -> list[int]:
        return [self.master]

    def replicas_of(self, port: int) -> list[int]:
        return [p for p in self.ports if p != port] if port == self.master else []

    def kill(self, port: int) -> None:
        """SIGKILLs one node: what it had not sent its replica is lost."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait()

    def promote(self, port: int) -> None:
        """The replica on `port` becomes the master (what Sentinel would do), the other node forgotten."""
        with node(port) as client:
            client.execute_command("REPLICAOF", "NO", "ONE")
        self.master = port

    def _popen(self, port: int, *extra: str) -> subprocess.Popen:
        node_dir = self.data_dir / f"node-{port}"
        node_dir.mkdir(parents=True, exist_ok=True)
        command = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
                   "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                   "--logfile", str(node_dir / "redis.log"), *extra]  # fmt: skip
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while True:
            with contextlib.suppress(redis.exceptions.RedisError), node(port) as client:
                if client.ping():
                    return process
            assert process.poll() is None, f"redis-server on {port} exited; see {node_dir}"
            assert time.monotonic() < deadline, f"redis-server on {port} did not start"
            time.sleep(0.05)


def slot_of(key: str) -> int:
    return key_slot(key.encode())
