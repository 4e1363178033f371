"""Load generators: wrk where installed, else Locust headless. Same load either way:
a fixed number of connections sending back to back for a fixed time."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


@dataclasses.dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # answers with an unexpected status, or failed connections


@dataclasses.dataclass
class Target:
    name: str
    url: str
    method: str = "GET"
    body: str | None = None
    cookie: str | None = None
    expect: int = 200


def pick(name: str) -> str:
    if name == "auto":
        return "wrk" if shutil.which("wrk") else "locust"
    return name


def run(generator: str, target: Target, *, seconds: float, connections: int) -> Result:
    runner = run_wrk if generator == "wrk" else run_locust
    return runner(target, seconds=seconds, connections=connections)


# wrk

_WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
{cookie}
"""


def _lua(text: str | None) -> str:
    return "nil" if text is None else json.dumps(text)  # a JSON string is a valid Lua string here


def run_wrk(target: Target, *, seconds: float, connections: int) -> Result:
    script = _WRK_SCRIPT.format(
        method=_lua(target.method),
        body=_lua(target.body),
        cookie=f'wrk.headers["Cookie"] = {_lua(target.cookie)}' if target.cookie else "",
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(script)
        file.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", file.name, target.url]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return _parse_wrk(output)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk_latency(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _parse_wrk(output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    # No Lua response() hook (it would slow wrk down): every expected status is a 2xx.
    not_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = int(not_2xx.group(1)) if not_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Result(rps, _wrk_latency(output, "50"), _wrk_latency(output, "99"), errors)


# Locust

_LOCUSTFILE = """
from locust import FastHttpUser, constant, task

class One(FastHttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        with self.client.request({method!r}, {path!r}, data={body!r}, headers={headers!r},
                                 catch_response=True) as response:
            if response.status_code != {expect}:
                response.failure("status %s" % response.status_code)
"""


def run_locust(target: Target, *, seconds: float, connections: int) -> Result:
    base, path = re.match(r"(https?://[^/]+)(/.*)", target.url).groups()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if target.cookie:
        headers["Cookie"] = target.cookie
    with tempfile.TemporaryDirectory() as folder:
        locustfile = Path(folder) / "locustfile.py"
        locustfile.write_text(
            _LOCUSTFILE.format(method=target.method, path=path, body=target.body, headers=headers, expect=target.expect)
        )
        command = [
            sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", base,
            "-u", str(connections), "-r", str(connections), "-t", f"{max(1, round(seconds))}s",
            "--json", "--loglevel", "WARNING",
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    try:
        (stats,) = json.loads(run.stdout)
    except ValueError:
        raise RuntimeError(f"locust gave no statistics:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}") from None
    elapsed = max(stats["last_request_timestamp"] - stats["start_time"], 1e-9)
    return Result(
        stats["num_requests"] / elapsed,
        _percentile(stats["response_times"], 0.50),
        _percentile(stats["response_times"], 0.99),
        stats["num_failures"],
    )


def _percentile(histogram: dict[str, int], fraction: float) -> float:
    """A percentile of Locust's response-time histogram (milliseconds, rounded by Locust)."""
    buckets = sorted((float(ms), count) for ms, count in histogram.items())
    wanted = fraction * sum(count for _, count in buckets)
    seen = 0
    for ms, count in buckets:
        seen += count
        if seen >= wanted:
            return ms
    return buckets[-1][0] if buckets else float("nan")
