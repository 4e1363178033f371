"""The second user: `GET /api/chats` on a new connection each time, one at a
time, from an address of its own, timing each answer. It runs in a process
of its own (`python -m bench.abuse.victim`), so that the attackers' work in
the tool's process does not slow its measurement down."""

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time

from .http import Server, exchange, request_bytes

SOURCE = "127.0.0.2"
PAUSE_SECS = 0.05  # between requests: about 15 a second when the server is quick


@dataclasses.dataclass
class Sample:
    answers: int = 0
    timeouts: int = 0
    unavailable: int = 0  # 503
    errors: int = 0  # 500, or anything else unexpected
    times_ms: list[float] = dataclasses.field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else float("nan")


async def measure(server: Server, cookie: str, stop: asyncio.Event) -> Sample:
    """Reads the chat list until `stop` is set."""
    sample, raw = Sample(), request_bytes("GET", "/api/chats", cookie=cookie)
    while not stop.is_set():
        started = time.perf_counter()
        answer = await exchange(server, SOURCE, raw)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if answer.timed_out:
            sample.timeouts += 1
        elif answer.status == 200:
            sample.answers += 1
            sample.times_ms.append(elapsed_ms)
        elif answer.status == 503:
            sample.unavailable += 1
        else:
            sample.errors += 1
        try:
            await asyncio.wait_for(stop.wait(), PAUSE_SECS)
        except TimeoutError:
            pass
    return sample


async def _for(server: Server, cookie: str, seconds: float) -> Sample:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await measure(server, cookie, stop)


async def alone(server: Server, cookie: str, seconds: float) -> Sample:
    """The victim's figures over `seconds`, measured by a process of its own."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.abuse.victim", server.host, str(server.port), str(seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await process.communicate(cookie.encode())
    return Sample(**json.loads(output))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse.victim")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args()
    cookie = sys.stdin.read().strip()  # not on the command line: `ps` would show it
    sample = asyncio.run(_for(Server(args.host, args.port), cookie, args.seconds))
    print(json.dumps(dataclasses.asdict(sample)))


if __name__ == "__main__":
    main()
