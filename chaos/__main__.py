"""`python -m chaos`: many simulated users against `run.py --workers 2`
while faults are injected on a seeded schedule; then an audit. Exits 1 if
anything acknowledged was lost, anything duplicated or out of order."""

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient

from .api import Api
from .audit import audit
from .faults import Faults, schedule
from .ledger import Ledger
from .report import print_report
from .service import Service
from .users import User

SETUP_BATCH = 10
CAUGHT_UP_TIMEOUT_SECS = 60.0
SETTLE_SECS = 2.0  # after every socket caught up: the last live events arrive


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the load and the faults last")
    parser.add_argument("--seed", type=int, default=1, help="the schedule and every client's choices")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--chats", type=int, default=8)
    parser.add_argument("--members", type=int, default=6, help="members per chat")
    parser.add_argument("--cluster", action="store_true",
                        help="a local Redis Cluster of three masters, each with a replica")  # fmt: skip
    parser.add_argument("--redis-wait-replicas", type=int, default=0,
                        help="passed to run.py: acknowledged writes wait for this many replicas")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the data directory (logs) afterwards")
    return parser.parse_args()


async def set_up(args: argparse.Namespace, service: Service, ledger: Ledger, rng: random.Random):
    """Registers the users, makes the chats, opens every user's socket."""
    users = [User(f"chaos{args.seed}u{i}", Api(service.base_url, ledger), ledger, random.Random(rng.random()))
             for i in range(args.users)]  # fmt: skip
    for first in range(0, len(users), SETUP_BATCH):
        await asyncio.gather(*(user.register() for user in users[first:first + SETUP_BATCH]))
    readers: dict[int, Api] = {}  # chat id -> a member's client, for the audit
    for index in range(args.chats):
        owner = users[index % len(users)]
        status, answer = await owner.api.call("POST", "/api/chats", {"title": f"chaos chat {index}"})
        assert status == 201, (status, answer)
        chat_id = answer["id"]
        readers[chat_id] = owner.api
        owner.chats.append(chat_id)
        others = [user for user in users if user is not owner]
        for member in rng.sample(others, min(args.members - 1, len(others))):
            status, answer = await owner.api.call("POST", f"/api/chats/{chat_id}/members", {"user_id": member.id})
            assert status == 201, (status, answer)
            member.chats.append(chat_id)
    users = [user for user in users if user.chats]
    for user in users:
        status, listing = await user.api.call("GET", "/api/chats")
        for chat in listing["chats"]:
            user.live.follow(chat["id"], chat["seq"], chat["epoch"])
    return users, readers


async def wait_caught_up(users: list[User], timeout: float) -> list[str]:
    """Until every socket is open with every chat resumed; the names of those that are not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        behind = [user.name for user in users if not user.live.caught_up]
        if not behind:
            return []
        await asyncio.sleep(0.2)
    return behind


async def run(args: argparse.Namespace, data_dir: Path) -> bool:
    rng = random.Random(args.seed)
    cluster = None
    redis_url = ""
    if args.cluster:
        from server.cluster_redis import LocalCluster

        cluster = LocalCluster(str(data_dir / "cluster"), masters=3, replicas=1)
        redis_url = await asyncio.to_thread(cluster.start)
    extra = ("--redis-wait-replicas", str(args.redis_wait_replicas)) if args.redis_wait_replicas else ()
    service = Service(data_dir / "service", redis_url=redis_url, extra_args=extra)
    sockets: list[asyncio.Task] = []
    try:
        service.start()
        print(f"started in {await service.wait_healthy():.1f} s: {service.base_url}, logs under {data_dir}", flush=True)
        AsyncHTTPClient.configure(None, max_clients=4 * args.users)
        ledger = Ledger()
        users, readers = await set_up(args, service, ledger, rng)
        sockets = [asyncio.create_task(user.live.keep_open()) for user in users]
        if behind := await wait_caught_up(users, CAUGHT_UP_TIMEOUT_SECS):
            raise RuntimeError(f"sockets did not open: {behind}")
        faults = Faults(service, rng, cluster)
        order = schedule(faults.kinds, args.seconds, rng)
        print(f"{len(users)} users in {len(readers)} chats; {args.seconds:.0f} s of load; faults planned, in order, as time allows: {' '.join(order)}",
              flush=True)  # fmt: skip
        ledger.started = time.monotonic()
        until = ledger.started + args.seconds
        await asyncio.gather(faults.run(order, until), *(user.act(until) for user in users))
        await service.wait_healthy()
        if behind := await wait_caught_up(users, CAUGHT_UP_TIMEOUT_SECS):
            ledger.problem("other", f"sockets not caught up {CAUGHT_UP_TIMEOUT_SECS:.0f} s after the load: {behind}")
        await asyncio.sleep(SETTLE_SECS)
        findings = await audit(ledger, users, faults.windows, readers)
        mode = "cluster (3 masters + 3 replicas)" if cluster else "single Redis (embedded)"
        title = (f"chaos: {mode}, run.py --workers 2, seed {args.seed}, {len(users)} users, "
                 f"--redis-wait-replicas {args.redis_wait_replicas}")  # fmt: skip
        return print_report(title, args.seconds, ledger, faults.windows, findings)
    finally:
        for user_task in sockets:
            user_task.cancel()
        service.stop()
        if cluster is not None:
            cluster.stop()


def main() -> None:
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="chaos-"))
    try:
        passed = asyncio.run(run(args, data_dir))
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
