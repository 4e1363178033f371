"""`python -m bench`: the chat server as `python run.py` runs it (rate limits
on, Redis with the shipped redis.conf) against a bare Tornado handler, same
machine, same load generator, same concurrency, alternated so that noise
falls on both. Prints medians and the goals of docs/benchmarks.md.

`python -m bench --smoke` runs everything for about a second each: it shows
the benchmark works, its numbers mean little.
"""

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time

from server.embedded_redis import EmbeddedRedis

from . import REPO, drivers, live, report
from .crowd import seed_crowd
from .heavy_users import seed_heavy_users
from .population import seed_population
from .seed import seed
from .seeding import upgrade

SEND_CHAT_SIZES = [1, 1_000, 10_000]
SMOKE_SEND_CHAT_SIZES = [1, 100, 1_000]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], port: int, **popen) -> subprocess.Popen:
    """Starts `command` (Popen's `popen` options too) and waits until it accepts on `port`."""
    process = subprocess.Popen(command, cwd=REPO, **popen)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start") from None
            time.sleep(0.1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="about a second per measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per target, alternated")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--generator", choices=("auto", "wrk", "locust"), default="auto")
    parser.add_argument("--large-history", type=int, default=1_000_000)
    parser.add_argument("--sends", type=int, default=300, help="timed sends per chat size")
    parser.add_argument("--requests", type=int, default=300,
                        help="timed requests of each line about a user in very many chats")  # fmt: skip
    parser.add_argument("--sockets", type=int, default=500, help="open sockets for live delivery")
    parser.add_argument("--burst", type=int, default=200, help="messages per live-delivery burst")
    parser.add_argument("--appendfsync", choices=("always", "everysec", "no"),
                        help="override redis.conf's durability, to see what it costs (default: as shipped)")
    args = parser.parse_args()
    args.send_chat_sizes = SMOKE_SEND_CHAT_SIZES if args.smoke else SEND_CHAT_SIZES
    args.memory_samples = 2_000 if args.smoke else 100_000
    if args.smoke:
        args.seconds, args.rounds, args.large_history = 1.0, 1, 10_000
        args.sends, args.requests, args.sockets, args.burst = 20, 20, 50, 20
    return args


async def seed_all(redis_url: str, args: argparse.Namespace) -> report.Seeds:
    """Every line's data, written before any server starts."""
    started = time.monotonic()
    seeds = report.Seeds(
        seeded=await seed(redis_url, large_history=args.large_history, memory_samples=args.memory_samples),
        population=await seed_population(redis_url),
        heavy=await seed_heavy_users(redis_url),
        crowd=await seed_crowd(redis_url, sizes=args.send_chat_sizes, live_members=args.sockets),
    )
    await upgrade(redis_url)
    print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)
    return seeds


def start_servers(redis_url: str, processes: list[subprocess.Popen]) -> report.Servers:
    """The chat server (as `python run.py` starts it, on the benchmark's Redis)
    and the two bare ones; each process is added to `processes` once started."""
    api_port, bare_port, bare_ws_port = free_port(), free_port(), free_port()
    # Limits on, but the login line logs the same users in for minutes: far
    # more successful logins than a person makes (docs/limits.md).
    api = start([sys.executable, "run.py", "--port", str(api_port), "--redis-url", redis_url,
                 "--logins-per-name", "1000000", "--logins-per-address", "1000000",
                 "--log-level", "warning"], api_port)  # fmt: skip
    processes.append(api)
    processes.append(start([sys.executable, "-m", "bench.bare", "--port", str(bare_port)], bare_port))
    bare_ws = start([sys.executable, "-m", "bench.bare_ws", "--port", str(bare_ws_port)], bare_ws_port)
    processes.append(bare_ws)
    return report.Servers(
        api=f"http://127.0.0.1:{api_port}",
        bare=f"http://127.0.0.1:{bare_port}",
        live_targets=[
            live.Target("server", f"ws://127.0.0.1:{api_port}/api/ws", api.pid),
            live.Target("bare", f"ws://127.0.0.1:{bare_ws_port}/api/ws", bare_ws.pid),
        ],
    )


def main() -> None:
    args = parse_args()
    generator = drivers.pick(args.generator)
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as data_dir:
        # redis.conf as shipped, its durability included, unless asked otherwise.
        redis = EmbeddedRedis(data_dir, *(["--appendfsync", args.appendfsync] if args.appendfsync else []))
        redis_url = redis.start()
        processes = []
        try:
            print("seeding...", flush=True)
            seeds = asyncio.run(seed_all(redis_url, args))
            report.everything(args, generator, seeds, start_servers(redis_url, processes))
        finally:
            for process in processes:
                process.terminate()
                process.wait()
            redis.stop()


if __name__ == "__main__":
    main()
