"""`python -m bench.abuse`: every attack of issue 15 at its size against
`run.py` at its defaults, each with the victim measured alone just before,
then a table; exits 1 if the victim was not served as docs/limits.md promises.

Only loopback is targeted, every attack is bounded in connections and time,
and the whole run stops by itself (about 10 minutes at the default sizes).
"""

import argparse
import asyncio
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server.embedded_redis import EmbeddedRedis

from ..__main__ import free_port, start
from ..seeding import upgrade
from . import attacks, setup, victim
from .http import Server

MEDIAN_RATIO_GOAL = 3.0
LOG_LINES_PER_SEC_GOAL = 50.0  # warning and error lines
SIZES = {"sockets": 19_900, "bodyless": 20_000, "drips": 300, "drip_limit_secs": 120.0, "fanout_sockets": 4_000,
         "fanout_messages": 44, "fanout_secs": 15.0, "page_readers": 200, "cookie_connections": 4, "hold_secs": 15.0}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=list(attacks.ATTACKS), help="run these attacks only")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count (0.1: a quick look)")
    parser.add_argument("--accounts", type=int, default=80, help="attacking accounts besides the attacker")
    parser.add_argument("--large-history", type=int, default=1_000_000, help="messages of the chat left (0: skip)")
    return parser.parse_args()


def sizes(scale: float) -> dict:
    """The attack sizes, scaled, and kept within this process's file limit."""
    room = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1_000
    scaled = {k: (v if isinstance(v, float) else max(1, min(room, int(v * scale)))) for k, v in SIZES.items()}
    scaled["hold_secs"] = max(5.0, SIZES["hold_secs"] * min(1.0, scale * 2))
    return scaled


class LogCounter:
    """Warning and error lines the server wrote to its log file (a successful
    request's access line, at info, comes with the traffic, not the attack)."""

    def __init__(self, path: Path):
        self.path = path

    def lines(self) -> int:
        with open(self.path, "rb") as log:
            return sum(1 for line in log if b" WARNING " in line or b" ERROR " in line or b" CRITICAL " in line)


async def run(args: argparse.Namespace, redis_url: str, log_path: Path) -> bool:
    print("seeding...", flush=True)
    seeded = await setup.seed(redis_url, accounts=args.accounts, large_history=args.large_history)
    await upgrade(redis_url)
    port = free_port()
    with open(log_path, "wb") as log:
        server_process = start([sys.executable, "run.py", "--port", str(port), "--redis-url", redis_url], port,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        server = Server("127.0.0.1", port)
        print("the big page:", await setup.fill_big_page(server, seeded), flush=True)
        return await run_attacks(args, server, seeded, LogCounter(log_path))
    finally:
        server_process.terminate()
        server_process.wait()


async def run_attacks(args, server: Server, seeded: setup.Seeded, log: LogCounter) -> bool:
    scaled, ok = sizes(args.scale), True
    hold = scaled["hold_secs"]

    async def during():
        return await victim.alone(server, seeded.victim_cookie, hold)

    ctx = attacks.Context(server, seeded.attacker_cookie, seeded.cookies, seeded.login_names, setup.PASSWORD_OF_SEEDED,
                          seeded.stranger_name, seeded.big_chat, seeded.fanout_chat, seeded.large_chat, scaled, during)  # fmt: skip
    print(f"sizes: {scaled}")
    print(f"{'attack':<20}{'alone ms':>9}{'during ms':>10}{'ratio':>7}{'new conn. ms':>13}{'timeouts':>9}{'503':>5}"
          f"{'other':>6}{'warnings/s':>11}  what the attack saw")  # fmt: skip
    for name in args.only or attacks.ATTACKS:
        before = await victim.alone(server, seeded.victim_cookie, 5.0)
        lines, started = log.lines(), time.monotonic()
        sample, facts = await attacks.ATTACKS[name](ctx)
        rate = (log.lines() - lines) / (time.monotonic() - started)
        ratio = sample.median_ms / before.median_ms
        good = (sample.timeouts == sample.unavailable == sample.errors == 0 and ratio <= MEDIAN_RATIO_GOAL
                and rate <= LOG_LINES_PER_SEC_GOAL and "500" not in str(facts) and not math.isnan(ratio))  # fmt: skip
        ok &= good
        fresh = f"{before.fresh_median_ms:.1f}/{sample.fresh_median_ms:.1f}"
        print(f"{name:<20}{before.median_ms:>9.1f}{sample.median_ms:>10.1f}{ratio:>7.2f}{fresh:>13}{sample.timeouts:>9}"
              f"{sample.unavailable:>5}{sample.errors:>6}{rate:>11.1f}  {facts}{'' if good else '  FAILED'}", flush=True)  # fmt: skip
        await asyncio.sleep(2)  # what the attack left behind closes
    return ok


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="chat-abuse-") as data_dir:
        redis = EmbeddedRedis(data_dir)
        redis_url = redis.start()
        try:
            ok = asyncio.run(run(args, redis_url, Path(data_dir) / "server.log"))
        finally:
            redis.stop()
    print("every attack left the victim served" if ok else "FAILED: see the rows marked FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
