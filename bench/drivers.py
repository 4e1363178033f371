"""Load generators: wrk where installed, else Locust headless. Same load either way:
a fixed number of connections sending back to back for a fixed time, each
request the next of the target's list."""

import collections
import dataclasses
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .traffic import Request


@dataclasses.dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # answers with an unexpected status, or failed connections


@dataclasses.dataclass
class Target:
    name: str
    base_url: str  # http://host:port
    requests: list[Request]  # played in order, round and round


def pick(name: str) -> str:
    if name == "auto":
        return "wrk" if shutil.which("wrk") else "locust"
    return name


def run(generator: str, target: Target, *, seconds: float, connections: int) -> Result:
    runner = run_wrk if generator == "wrk" else run_locust
    return runner(target, seconds=seconds, connections=connections)


def median_result(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def alternate(generator: str, targets: list[Target], *, rounds: int, seconds: float, connections: int):
    """Runs each target once per round, in turn, so that noise on the
    machine falls on all of them; name -> median result."""
    results = {t.name: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            results[target.name].append(run(generator, target, seconds=seconds, connections=connections))
    return {name: median_result(runs) for name, runs in results.items()}


# wrk

# Every request is built once, in init(); request() hands out the next one.
# The bare handler goes through the same script, so the generator's work
# per request is the same for every target.
_WRK_SCRIPT = r"""
local requests, count, last = {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    local method, path, cookie, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
    local headers = {}
    if cookie ~= "" then headers["Cookie"] = cookie end
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/x-www-form-urlencoded"
    end
    count = count + 1
    requests[count] = wrk.format(method, path, headers, body)
  end
end

function request()
  last = last % count + 1
  return requests[last]
end
"""


def _tsv_line(request: Request) -> str:
    """method, path, cookie, body, tab-separated (none of them holds a tab)."""
    return "\t".join((request.method, request.path, request.cookie or "", request.body or "")) + "\n"


def run_wrk(target: Target, *, seconds: float, connections: int) -> Result:
    with tempfile.TemporaryDirectory() as folder:
        script, requests = Path(folder) / "requests.lua", Path(folder) / "requests.tsv"
        script.write_text(_WRK_SCRIPT)
        requests.write_text("".join(_tsv_line(request) for request in target.requests))
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
                   target.base_url, "--", str(requests)]  # fmt: skip
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

# The requests are shared by the users of the one Locust process: each
# request takes the next one, as with wrk.
_LOCUSTFILE = """
import itertools
import json
import pathlib

from locust import FastHttpUser, constant, task

REQUESTS = itertools.cycle(json.loads(pathlib.Path({requests!r}).read_text()))
FORM = {{"Content-Type": "application/x-www-form-urlencoded"}}


class One(FastHttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        method, path, cookie, body, expect = next(REQUESTS)
        headers = {{**FORM, "Cookie": cookie}} if cookie else dict(FORM)
        with self.client.request(method, path, data=body, headers=headers, name="line",
                                 catch_response=True) as response:
            if response.status_code != expect:
                response.failure("status %s" % response.status_code)
"""


def run_locust(target: Target, *, seconds: float, connections: int) -> Result:
    with tempfile.TemporaryDirectory() as folder:
        locustfile, requests = Path(folder) / "locustfile.py", Path(folder) / "requests.json"
        requests.write_text(json.dumps([dataclasses.astuple(request) for request in target.requests]))
        locustfile.write_text(_LOCUSTFILE.format(requests=str(requests)))
        command = [
            sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", target.base_url,
            "-u", str(connections), "-r", str(connections), "-t", f"{max(1, round(seconds))}s",
            "--json", "--loglevel", "WARNING",
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    try:
        entries = json.loads(run.stdout)
    except ValueError:
        entries = []
    if not entries:
        raise RuntimeError(f"locust gave no statistics:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return _locust_result(entries)


def _locust_result(entries: list[dict]) -> Result:
    """One result from Locust's statistics, which have an entry per request method."""
    histogram = collections.Counter()
    for entry in entries:
        histogram.update({float(ms): count for ms, count in entry["response_times"].items()})
    started = min(entry["start_time"] for entry in entries)
    elapsed = max(max(entry["last_request_timestamp"] for entry in entries) - started, 1e-9)
    return Result(
        sum(entry["num_requests"] for entry in entries) / elapsed,
        _percentile(histogram, 0.50),
        _percentile(histogram, 0.99),
        sum(entry["num_failures"] for entry in entries),
    )


def _percentile(histogram: dict[float, int], fraction: float) -> float:
    """A percentile of Locust's response-time histogram (milliseconds, rounded by Locust)."""
    buckets = sorted(histogram.items())
    wanted = fraction * sum(count for _, count in buckets)
    seen = 0
    for ms, count in buckets:
        seen += count
        if seen >= wanted:
            return ms
    return buckets[-1][0] if buckets else float("nan")
