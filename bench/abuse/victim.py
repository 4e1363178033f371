"""The second user: `GET /api/chats`, one at a time, from an address of its
own, timing each answer: on a kept-alive connection, as a client does, and
every fourth time on a new connection (is the server still accepting?). It runs in a process
of its own (`python -m bench.abuse.victim`), so that the attackers' work in
the tool's process does not slow its measurement down."""

import argparse
import asyncio
import dataclasses
import itertools
import json
import statistics
import sys
import time

from .http import TIMEOUT_SECS, Answer, Server, connect, exchange, read_answer, request_bytes

SOURCE = "127.0.0.2"
PAUSE_SECS = 0.05  # between requests: about 15 a second when the server is quick


FRESH_EVERY = 4  # every fourth request on a new connection: is the server still accepting?


@dataclasses.dataclass
class Sample:
    answers: int = 0
    timeouts: int = 0
    unavailable: int = 0  # 503
    errors: int = 0  # 500, or anything else unexpected
    times_ms: list[float] = dataclasses.field(default_factory=list)  # on the kept-alive connection
    fresh_ms: list[float] = dataclasses.field(default_factory=list)  # each on a new connection, connecting included

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else float("nan")

    @property
    def fresh_median_ms(self) -> float:
        return statistics.median(self.fresh_ms) if self.fresh_ms else float("nan")

    def count(self, answer: Answer, elapsed_ms: float, times: list[float]) -> None:
        if answer.timed_out:
            self.timeouts += 1
        elif answer.status == 200:
            self.answers += 1
            times.append(elapsed_ms)
        elif answer.status == 503:
            self.unavailable += 1
        else:
            self.errors += 1


class KeptAlive:
    """One keep-alive connection, opened again when the server closes it."""

    def __init__(self, server: Server):
        self.server = server
        self.streams = None

    async def exchange(self, raw: bytes) -> Answer:
        try:
            async with asyncio.timeout(TIMEOUT_SECS):
                if self.streams is None:
                    self.streams = await connect(self.server, SOURCE)
                reader, writer = self.streams
                writer.write(raw)
                return await read_answer(reader)
        except TimeoutError:
            self.close()
            return Answer(0, timed_out=True)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            return Answer(0)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def measure(server: Server, cookie: str, stop: asyncio.Event) -> Sample:
    """Reads the chat list until `stop` is set: on a kept-alive connection,
    as a client does (the median), and every FRESH_EVERY-th time on a new one."""
    sample, raw, kept = Sample(), request_bytes("GET", "/api/chats", cookie=cookie), KeptAlive(server)
    for number in itertools.count():
        if stop.is_set():
            break
        fresh = number % FRESH_EVERY == FRESH_EVERY - 1
        started = time.perf_counter()
        answer = await (exchange(server, SOURCE, raw) if fresh else kept.exchange(raw))
        sample.count(answer, (time.perf_counter() - started) * 1000, sample.fresh_ms if fresh else sample.times_ms)
        try:
            await asyncio.wait_for(stop.wait(), PAUSE_SECS)
        except TimeoutError:
            pass
    kept.close()
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
