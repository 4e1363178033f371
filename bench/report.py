"""The lines `python -m bench` measures and prints, each against its goal
(docs/benchmarks.md)."""

import dataclasses
import itertools
import math
import os
import platform

from . import drivers, live, logins, send_latency, sequential, traffic
from .crowd import SENDERS, Crowd
from .heavy_users import CREATOR_CHATS, LISTER_CHATS, HeavyUsers
from .population import CHATS_PER_USER, MEMBERS_PER_CHAT, USERS, Member
from .seed import HISTORY_PAGE, SMALL_HISTORY, Seeded

TAIL_GOAL = 3.0  # a line's p99 within this many times its p50
LIST_MANY_GOAL_MS = 3.0  # p50 of the list of a user in LISTER_CHATS chats
CREATE_MANY_GOAL_MS = 5.0  # p50 of a creation by a user in CREATOR_CHATS chats


@dataclasses.dataclass
class Seeds:
    seeded: Seeded
    population: list[Member]
    heavy: HeavyUsers
    crowd: Crowd


@dataclasses.dataclass
class Servers:
    api: str  # http://host:port of the chat server
    bare: str  # of the bare handler
    live_targets: list[live.Target]  # the chat server's socket, the bare broadcaster's


@dataclasses.dataclass
class Line:
    target: drivers.Target
    goal: float | None  # requests/s as a share of the bare handler's, in the same run


def everything(args, generator: str, seeds: Seeds, servers: Servers) -> None:
    chat_list = throughput(args, generator, seeds, servers)
    history_sizes(args, generator, seeds.seeded, servers.api)
    print(f"Redis memory per message beyond its content: {seeds.seeded.bytes_per_message:.0f} bytes (budget <= 200)")
    during_logins(args, generator, seeds.seeded, servers.api, chat_list)
    heavy_users(args, seeds.heavy, servers.api)
    big_chats(args, seeds.crowd, servers)


def _throughput_lines(population: list[Member], servers: Servers) -> list[Line]:
    """The bare handler first (the ceiling), then the chat server's lines."""
    api = servers.api
    return [
        Line(drivers.Target("bare handler", servers.bare, [traffic.Request("GET", "/")]), None),
        Line(drivers.Target(f"GET /api/chats ({CHATS_PER_USER} chats)", api,
                            traffic.line(traffic.chat_list, population)), 0.65),
        Line(drivers.Target(f"GET /api/chats/{{id}} ({HISTORY_PAGE} messages)", api,
                            traffic.line(traffic.history, population)), 0.60),
        Line(drivers.Target("POST /api/chats/{id}", api, traffic.line(traffic.send, population)), 0.45),
        Line(drivers.Target("mixed: 90% reads, 10% sends", api, traffic.line(traffic.mixed, population)), 0.50),
    ]  # fmt: skip


def throughput(args, generator: str, seeds: Seeds, servers: Servers) -> drivers.Target:
    """The table of the throughput lines; the chat list's target (for the logins line)."""
    lines = _throughput_lines(seeds.population, servers)
    print(f"measuring with {generator}: {args.rounds} rounds x {args.seconds:g}s, {args.connections} connections",
          flush=True)  # fmt: skip
    results = drivers.alternate(generator, [line.target for line in lines], rounds=args.rounds,
                                seconds=args.seconds, connections=args.connections)  # fmt: skip
    _print_setting(args, generator, seeds.seeded)
    print(f"{'endpoint':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'budget':>11} "
          f"{'p99/p50':>10} {'errors':>6}")  # fmt: skip
    ceiling = results[lines[0].target.name].rps
    for line in lines:
        result = results[line.target.name]
        ratio = result.rps / ceiling
        budget = "" if line.goal is None else f">={line.goal:.2f} {_verdict(ratio >= line.goal)}"
        print(f"{line.target.name:34} {result.rps:9.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f} {ratio:6.2f} "
              f"{budget:>11} {_tail(result.p50_ms, result.p99_ms):>10} {result.errors:6d}")  # fmt: skip
    print(f"(p99/p50 goal: <= {TAIL_GOAL:g}; errors: answers with another status than expected, a 429 included)")
    return lines[1].target


def _print_setting(args, generator: str, seeded: Seeded) -> None:
    """The machine, Redis's durability and how the server runs."""
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}, "
          f"Python {platform.python_version()}, Redis {seeded.redis_version} (appendfsync {seeded.appendfsync}), "
          f"load generator {generator} ({_load_shape(generator, args.connections)})")  # fmt: skip
    print(f"server: run.py at its defaults, rate limits on; each request of a line as the next of {USERS:,} "
          f"users, each in {CHATS_PER_USER} chats of {MEMBERS_PER_CHAT} members")  # fmt: skip


def history_sizes(args, generator: str, seeded: Seeded, api: str) -> None:
    """History read p50 at two sizes, one connection: a page costs the same however long the chat."""
    history = [
        drivers.Target(f"history of {size}", api,
                       [traffic.Request("GET", f"/api/chats/{chat}?limit={HISTORY_PAGE}", seeded.reader_cookie)])
        for size, chat in ((SMALL_HISTORY, seeded.small_chat), (args.large_history, seeded.large_chat))
    ]  # fmt: skip
    latency = drivers.alternate(generator, history, rounds=args.rounds, seconds=args.seconds, connections=1)
    small, large = (latency[t.name].p50_ms for t in history)
    # Locust reports whole milliseconds: a fast page can read as 0.
    ratio = f"{large / small:.2f}" if small else "n/a (below the generator's resolution)"
    print(f"\nhistory read p50 (one connection): {SMALL_HISTORY:,} messages {small:.3f} ms, "
          f"{args.large_history:,} messages {large:.3f} ms: ratio {ratio} (budget <= 1.20)")


def during_logins(args, generator: str, seeded: Seeded, api: str, chat_list: drivers.Target) -> None:
    """The chat list's p99 alone and while logins run, alternated."""
    run = dict(seconds=args.seconds, connections=args.connections)
    quiet, busy = [], []
    for _ in range(args.rounds):
        quiet.append(drivers.run(generator, chat_list, **run))
        with logins.running(f"{api}/api/login", seeded.login_bodies, args.seconds):
            busy.append(drivers.run(generator, chat_list, **run))
    quiet_p99, busy_p99 = drivers.median_result(quiet).p99_ms, drivers.median_result(busy).p99_ms
    print(f"GET /api/chats p99: {quiet_p99:.2f} ms alone, {busy_p99:.2f} ms during {len(seeded.login_bodies)} "
          f"concurrent logins: ratio {busy_p99 / quiet_p99:.2f} (budget <= 2.00)")  # fmt: skip


def heavy_users(args, heavy: HeavyUsers, api: str) -> None:
    """The two one-connection lines of users in very many chats."""
    listing = itertools.repeat(traffic.Request("GET", "/api/chats", heavy.lister_cookie))
    latency = sequential.measure(api, listing, count=args.requests)
    print("\n" + _latency_line(f"a user in {LISTER_CHATS:,} chats lists them", latency, LIST_MANY_GOAL_MS))
    latency = sequential.measure(api, traffic.creations(heavy.creator_cookie), count=args.requests)
    print(_latency_line(f"creating a chat when already in {CREATOR_CHATS:,} chats", latency, CREATE_MANY_GOAL_MS))


def _latency_line(name: str, latency: sequential.Latency, goal_ms: float) -> str:
    line = (f"{name} (one connection, {latency.count} requests): p50 {latency.p50_ms:.3f} ms, "
            f"p99 {latency.p99_ms:.3f} ms; goal p50 <= {goal_ms:g} ms: {_verdict(latency.p50_ms <= goal_ms)}; "
            f"p99/p50 {_tail(latency.p50_ms, latency.p99_ms)}")  # fmt: skip
    return line + (f"; {latency.errors} FAILED" if latency.errors else "")


def big_chats(args, crowd: Crowd, servers: Servers) -> None:
    """The send latency by chat size and the live delivery CPU lines."""
    sizes = args.send_chat_sizes
    latency = send_latency.measure(servers.api, crowd.senders_by_size, sends=args.sends)
    one, most = latency[sizes[0]], latency[sizes[-1]]
    p50s = ", ".join(f"{size:,} {_members(size)} {latency[size].p50_ms:.3f} ms" for size in sizes)
    p99s = ", ".join(f"{latency[size].p99_ms:.3f} ms" for size in sizes)
    errors = sum(result.errors for result in latency.values())
    print(f"\nsend p50 by chat size (one connection, {one.count} sends each, from {SENDERS} users in turn): "
          f"{p50s}: ratio {_ratio(most.p50_ms, one.p50_ms)} (goal <= 1.20)")  # fmt: skip
    print(f"send p99 by chat size: {p99s}" + (f"; {errors} sends FAILED" if errors else ""))

    runs = live.compare(servers.live_targets, rounds=args.rounds, chat_id=crowd.live_chat,
                        cookies=crowd.live_cookies, messages=args.burst)  # fmt: skip
    server, bare = (runs[target.name] for target in servers.live_targets)
    server_rate, bare_rate = live.median_rate(server), live.median_rate(bare)
    print(f"live delivery ({len(crowd.live_cookies)} sockets x {args.burst} messages, sent by the sockets in turn): "
          f"server {server_rate:,.0f} deliveries per CPU-second, bare broadcaster {bare_rate:,.0f}: "
          f"ratio {_ratio(server_rate, bare_rate)} (goal >= 0.70)")  # fmt: skip
    cpu = ", ".join(f"{run.cpu_secs:.2f}/{other.cpu_secs:.2f} s" for run, other in zip(server, bare))
    print(f"  CPU per burst, server/bare: {cpu}; message events of {server[0].frame_bytes:.0f}/"
          f"{bare[0].frame_bytes:.0f} bytes")  # fmt: skip
    for target, target_runs in runs.items():
        if problem := live.describe(target_runs):
            print(f"  {target}: {problem}")


def _verdict(met: bool) -> str:
    return "ok" if met else "MISS"


def _tail(p50_ms: float, p99_ms: float) -> str:
    """p99 / p50 and whether it is within TAIL_GOAL."""
    if not (0 < p50_ms < math.inf and 0 < p99_ms < math.inf):
        return "n/a"  # Locust's whole milliseconds can read a fast p50 as 0
    return f"{p99_ms / p50_ms:.1f} {_verdict(p99_ms <= TAIL_GOAL * p50_ms)}"


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
