"""The faults, each injected and waited out, on a schedule drawn from a seed."""

import asyncio
import dataclasses
import os
import random
import signal
import time

import redis.asyncio as aioredis
import redis.exceptions

from .service import Service, redis_pid

FREEZE_SECS = 3.0
# Before a master is killed its replica is stopped this long, as a partition
# or a slow replica would leave it behind: what the master acknowledges
# meanwhile is on the master alone, unless --redis-wait-replicas holds the
# answers back. (On loopback a replica is otherwise a fraction of a
# millisecond behind, and a kill almost never catches a write in between.)
REPLICA_LAG_SECS = 1.0
FIRST_FAULT_SECS = 5.0
QUIET_TAIL_SECS = 10.0  # no fault starts this close to the end of the load
GAP_SECS = (6.0, 12.0)  # between one fault's recovery and the next fault
RECOVERY_TIMEOUT_SECS = 90.0

SINGLE_KINDS = ("worker_kill", "redis_kill", "redis_freeze", "pubsub_kill")
CLUSTER_KINDS = ("worker_kill", "master_kill", "redis_freeze", "pubsub_kill")


@dataclasses.dataclass
class Window:
    """A fault from its injection until the service answered /healthz from every worker again."""

    kind: str
    start: float
    end: float
    detail: str


def schedule(kinds: tuple[str, ...], seconds: float, rng: random.Random) -> list[str]:
    """The order of the faults: every kind once in a shuffled round, round
    after round, as many as fit in `seconds` at the mean gap."""
    count = max(len(kinds), int((seconds - FIRST_FAULT_SECS - QUIET_TAIL_SECS) / (sum(GAP_SECS) / 2 + 3)))
    order: list[str] = []
    while len(order) < count:
        order += rng.sample(kinds, len(kinds))
    return order[:count]


class Faults:
    """Injects faults into `service` (and `cluster`, a LocalCluster, in cluster mode)."""

    def __init__(self, service: Service, rng: random.Random, cluster=None):
        self.service = service
        self.rng = rng
        self.cluster = cluster
        self.windows: list[Window] = []

    @property
    def kinds(self) -> tuple[str, ...]:
        return CLUSTER_KINDS if self.cluster is not None else SINGLE_KINDS

    async def run(self, order: list[str], until: float) -> None:
        """Injects `order` one after another, with a random gap, until `until` nears."""
        await asyncio.sleep(FIRST_FAULT_SECS)
        for kind in order:
            if time.monotonic() > until - QUIET_TAIL_SECS:
                return
            started = time.monotonic()
            detail = await getattr(self, kind)()
            await self.service.wait_healthy(RECOVERY_TIMEOUT_SECS)
            self.windows.append(Window(kind, started, time.monotonic(), detail))
            await asyncio.sleep(self.rng.uniform(*GAP_SECS))

    async def worker_kill(self) -> str:
        pid = self.rng.choice(self.service.worker_pids())
        os.kill(pid, signal.SIGKILL)
        while pid in self.service.worker_pids():
            await asyncio.sleep(0.05)
        return f"SIGKILL worker {pid}"

    async def redis_kill(self) -> str:
        """SIGKILL the embedded redis-server; the supervisor starts it again on its data."""
        (client,) = self.service.redis_clients()
        async with client:
            pid = await redis_pid(client)
            os.kill(pid, signal.SIGKILL)
            while await self._pid_of(client) in (pid, None):
                await asyncio.sleep(0.05)
        return f"SIGKILL redis-server {pid}"

    async def redis_freeze(self) -> str:
        """SIGSTOP a Redis (on a cluster, a master) for FREEZE_SECS, then SIGCONT."""
        client = self._clients_of_masters()[0] if self.cluster is None else self.rng.choice(self._clients_of_masters())
        async with client:
            pid = await redis_pid(client)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(FREEZE_SECS)
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"SIGSTOP redis-server {pid} for {FREEZE_SECS:.0f} s"

    async def pubsub_kill(self) -> str:
        """CLIENT KILL TYPE pubsub on every node: the server processes lose their subscriptions."""
        killed = 0
        for client in self._clients_of_all_nodes():
            async with client:
                killed += await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        return f"CLIENT KILL TYPE pubsub: {killed} connections"

    async def master_kill(self) -> str:
        """SIGKILL a cluster master whose replica lags REPLICA_LAG_SECS behind
        (stopped meanwhile); once the replica has taken over, the old master
        starts again on its files and rejoins as a replica."""
        port = self.rng.choice(await asyncio.to_thread(self.cluster.master_ports))
        replicas = await asyncio.to_thread(self.cluster.replicas_of, port)
        lagging = [self.cluster.pid(replica) for replica in replicas]
        for pid in lagging:
            os.kill(pid, signal.SIGSTOP)
        try:
            # Stopped alone, a replica would find in its socket's kernel buffer
            # what the master sent meanwhile: the master's links to it go too.
            master = _node(port)
            try:
                await master.client_kill_filter(_type="replica")
            finally:
                await master.aclose()
            await asyncio.sleep(REPLICA_LAG_SECS)
            await asyncio.to_thread(self.cluster.kill, port)
        finally:
            for pid in lagging:
                os.kill(pid, signal.SIGCONT)
        await asyncio.to_thread(self.cluster.wait_until_ok)
        await asyncio.to_thread(self.cluster.restart, port)
        await asyncio.to_thread(self.cluster.wait_until_ok)
        return (f"SIGKILL master :{port} with its replica {REPLICA_LAG_SECS:.0f} s behind (stopped), "
                "the replica promoted, the old master rejoined as a replica")  # fmt: skip

    def _clients_of_masters(self) -> list[aioredis.Redis]:
        if self.cluster is None:
            return self.service.redis_clients()
        return [_node(port) for port in self.cluster.master_ports()]

    def _clients_of_all_nodes(self) -> list[aioredis.Redis]:
        if self.cluster is None:
            return self.service.redis_clients()
        return [_node(port) for port in self.cluster.ports]

    @staticmethod
    async def _pid_of(client: aioredis.Redis) -> int | None:
        try:
            return await redis_pid(client)
        except (redis.exceptions.RedisError, OSError):
            return None


def _node(port: int) -> aioredis.Redis:
    """A client of one local Redis node."""
    return aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
