"""`python -m bench`: the chat server against a bare Tornado handler, same
machine, same load generator, same concurrency, alternated so that noise
falls on both. Prints medians and the budget of docs/benchmarks.md.

`python -m bench --smoke` runs everything for about a second each: it shows
the benchmark works, its numbers mean little.
"""

import argparse
import asyncio
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server.embedded_redis import EmbeddedRedis

from . import drivers, live, send_latency
from .crowd import seed_crowd
from .seed import HISTORY_PAGE, seed

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench password"
SEND_CHAT_SIZES = [1, 1_000, 10_000]
SMOKE_SEND_CHAT_SIZES = [1, 100, 1_000]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, cwd=REPO)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start") from None
            time.sleep(0.1)


def median_result(results: list[drivers.Result]) -> drivers.Result:
    return drivers.Result(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def alternate(generator, targets, *, rounds, seconds, connections):
    """Runs each target once per round, in turn; returns name -> median result."""
    results = {t.name: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            results[target.name].append(
                drivers.run(generator, target, seconds=seconds, connections=connections)
            )
    return {name: median_result(runs) for name, runs in results.items()}


def with_logins(generator, login: drivers.Target, target: drivers.Target, *, seconds, connections):
    """`target` measured while 10 logins run at once, the whole time."""
    command = [sys.executable, "-m", "bench.logins", login.url, login.body, str(seconds + 2)]
    background = subprocess.Popen(command, cwd=REPO)
    try:
        time.sleep(0.5)  # let the logins get going
        return drivers.run(generator, target, seconds=seconds, connections=connections)
    finally:
        background.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="about a second per measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per target, alternated")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--generator", choices=("auto", "wrk", "locust"), default="auto")
    parser.add_argument("--large-history", type=int, default=1_000_000)
    parser.add_argument("--sends", type=int, default=300, help="timed sends per chat size")
    parser.add_argument("--sockets", type=int, default=500, help="open sockets for live delivery")
    parser.add_argument("--burst", type=int, default=200, help="messages per live-delivery burst")
    args = parser.parse_args()
    args.send_chat_sizes = SMOKE_SEND_CHAT_SIZES if args.smoke else SEND_CHAT_SIZES
    if args.smoke:
        args.seconds, args.rounds, args.large_history = 1.0, 1, 10_000
        args.sends, args.sockets, args.burst = 20, 50, 20
    generator = drivers.pick(args.generator)

    with tempfile.TemporaryDirectory(prefix="chat-bench-") as data_dir:
        # everysec: the numbers measure the server, not this disk (see docs/benchmarks.md).
        redis = EmbeddedRedis(data_dir, "--appendfsync", "everysec")
        redis_url = redis.start()
        processes = []
        try:
            print("seeding...", flush=True)
            seeded = asyncio.run(
                seed(redis_url, large_history=args.large_history,
                     memory_samples=2_000 if args.smoke else 100_000, password=PASSWORD)
            )  # fmt: skip
            crowd = asyncio.run(seed_crowd(redis_url, sizes=args.send_chat_sizes, live_members=args.sockets))
            api_port, bare_port, bare_ws_port = free_port(), free_port(), free_port()
            api_process = start([sys.executable, "run.py", "--port", str(api_port), "--redis-url", redis_url,
                                 "--log-level", "warning", "--rate-limits", "off"], api_port)  # fmt: skip
            processes.append(api_process)
            processes.append(start([sys.executable, "-m", "bench.bare", "--port", str(bare_port)], bare_port))
            bare_ws_process = start([sys.executable, "-m", "bench.bare_ws", "--port", str(bare_ws_port)], bare_ws_port)
            processes.append(bare_ws_process)
            live_targets = [
                live.Target("server", f"ws://127.0.0.1:{api_port}/api/ws", api_process.pid),
                live.Target("bare", f"ws://127.0.0.1:{bare_ws_port}/api/ws", bare_ws_process.pid),
            ]
            report(args, generator, seeded, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}",
                   crowd=crowd, live_targets=live_targets)  # fmt: skip
        finally:
            for process in processes:
                process.terminate()
                process.wait()
            redis.stop()


def report(args, generator, seeded, api: str, bare: str, *, crowd, live_targets: list[live.Target]) -> None:
    run = dict(seconds=args.seconds, connections=args.connections)
    chats = drivers.Target("GET /api/chats (20 chats)", f"{api}/api/chats", cookie=seeded.reader_cookie)
    targets = [
        drivers.Target("bare handler", f"{bare}/"),
        chats,
        drivers.Target(f"GET /api/chats/{{id}} ({HISTORY_PAGE} messages)",
                       f"{api}/api/chats/{seeded.page_chat}?limit={HISTORY_PAGE}", cookie=seeded.reader_cookie),
        drivers.Target("POST /api/chats/{id}", f"{api}/api/chats/{seeded.send_chat}", method="POST",
                       body="content=a+benchmark+message+of+ordinary+length", cookie=seeded.reader_cookie,
                       expect=201),
    ]  # fmt: skip
    print(f"measuring with {generator}: {args.rounds} rounds x {args.seconds:g}s, {args.connections} connections",
          flush=True)  # fmt: skip
    results = alternate(generator, targets, rounds=args.rounds, **run)
    ceiling = results["bare handler"].rps
    budgets = {targets[1].name: 0.50, targets[2].name: 0.45, targets[3].name: 0.45}

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}, Python {platform.python_version()}, "
          f"Redis {seeded.redis_version}, load generator {generator} ({_load_shape(generator, args.connections)})")
    print(f"{'endpoint':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'budget':>7} {'errors':>6}")
    for name, result in results.items():
        budget = budgets.get(name)
        ratio = result.rps / ceiling
        verdict = "" if budget is None else f">={budget:.2f} {'ok' if ratio >= budget else 'MISS'}"
        print(f"{name:34} {result.rps:9.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f} {ratio:6.2f} "
              f"{verdict:>7} {result.errors:6d}")  # fmt: skip

    history = [
        drivers.Target(f"history of {size}", f"{api}/api/chats/{chat}?limit={HISTORY_PAGE}", cookie=seeded.reader_cookie)
        for size, chat in ((1000, seeded.small_chat), (args.large_history, seeded.large_chat))
    ]
    latency = alternate(generator, history, rounds=args.rounds, seconds=args.seconds, connections=1)
    small, large = (latency[t.name].p50_ms for t in history)
    # Locust reports whole milliseconds: a fast page can read as 0.
    ratio = f"{large / small:.2f}" if small else "n/a (below the generator's resolution)"
    print(f"\nhistory read p50 (one connection): 1,000 messages {small:.3f} ms, "
          f"{args.large_history:,} messages {large:.3f} ms: ratio {ratio} (budget <= 1.20)")
    print(f"Redis memory per message beyond its content: {seeded.bytes_per_message:.0f} bytes (budget <= 200)")

    login = drivers.Target("logins", f"{api}/api/login", method="POST", body=seeded.login_body)
    quiet, busy = [], []
    for _ in range(args.rounds):
        quiet.append(drivers.run(generator, chats, **run))
        busy.append(with_logins(generator, login, chats, **run))
    quiet_p99, busy_p99 = median_result(quiet).p99_ms, median_result(busy).p99_ms
    print(f"GET /api/chats p99: {quiet_p99:.2f} ms alone, {busy_p99:.2f} ms during 10 concurrent logins: "
          f"ratio {busy_p99 / quiet_p99:.2f} (budget <= 2.00)")  # fmt: skip
    report_crowd(args, crowd, api, live_targets)


def report_crowd(args, crowd, api: str, live_targets: list[live.Target]) -> None:
    """The send latency by chat size and the live delivery CPU lines."""
    sizes = args.send_chat_sizes
    latency = send_latency.measure(api, crowd.sender_cookie, crowd.chats_by_size, sends=args.sends)
    one, most = latency[sizes[0]], latency[sizes[-1]]
    p50s = ", ".join(f"{size:,} {_members(size)} {latency[size].p50_ms:.3f} ms" for size in sizes)
    p99s = ", ".join(f"{latency[size].p99_ms:.3f} ms" for size in sizes)
    errors = sum(result.errors for result in latency.values())
    print(f"\nsend p50 by chat size (one connection, {one.sends} sends each): {p50s}: "
          f"ratio {_ratio(most.p50_ms, one.p50_ms)} (goal <= 1.20)")  # fmt: skip
    print(f"send p99 by chat size: {p99s}" + (f"; {errors} sends FAILED" if errors else ""))

    runs = live.compare(live_targets, rounds=args.rounds, chat_id=crowd.live_chat, cookies=crowd.live_cookies,
                        messages=args.burst)  # fmt: skip
    server, bare = (runs[target.name] for target in live_targets)
    server_rate, bare_rate = live.median_rate(server), live.median_rate(bare)
    print(f"live delivery ({len(crowd.live_cookies)} sockets x {args.burst} messages): server "
          f"{server_rate:,.0f} deliveries per CPU-second, bare broadcaster {bare_rate:,.0f}: "
          f"ratio {_ratio(server_rate, bare_rate)} (goal >= 0.70)")  # fmt: skip
    cpu = ", ".join(f"{run.cpu_secs:.2f}/{other.cpu_secs:.2f} s" for run, other in zip(server, bare))
    print(f"  CPU per burst, server/bare: {cpu}; message events of {server[0].frame_bytes:.0f}/"
          f"{bare[0].frame_bytes:.0f} bytes")  # fmt: skip
    for target, target_runs in runs.items():
        if problem := live.describe(target_runs):
            print(f"  {target}: {problem}")


def _ratio(numerator: float, denominator: float) -> str:
    """numerator / denominator to two places, or n/a where either is not a finite, positive figure."""
    if not (0 < numerator < math.inf and 0 < denominator < math.inf):
        return "n/a (too short to measure)"
    return f"{numerator / denominator:.2f}"


def _members(size: int) -> str:
    """The word for a chat's size."""
    return "member" if size == 1 else "members"


def _load_shape(generator: str, connections: int) -> str:
    return f"1 thread, {connections} connections" if generator == "wrk" else f"1 process, {connections} users"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
