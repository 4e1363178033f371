"""Logins at once, each thread logging one user in back to back, for a while:
`python -m bench.logins URL SECONDS BODY...` (a form-encoded name and
password per thread).

One user per thread: a login reserves a place among the name's allowed
failures until its password is checked, so ten logins of one name at once
would pass the limit of five and be refused, rate limits being on.
"""

import contextlib
import http.client
import subprocess
import sys
import threading
import time
import urllib.parse

from . import REPO

CONCURRENT_LOGINS = 10
START_SECS = 0.5  # for the logins to get going


def keep_logging_in(url: str, body: str, deadline: float, failures: list, done: list) -> None:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while time.monotonic() < deadline:
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            failures.append(response.status)
        done.append(1)


def main() -> None:
    url, seconds, bodies = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    deadline = time.monotonic() + seconds
    failures: list[int] = []
    done: list[int] = []
    threads = [threading.Thread(target=keep_logging_in, args=(url, body, deadline, failures, done)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"logins: {len(done)} in {seconds:g}s ({len(done) / seconds:.1f}/s), {len(failures)} failed", flush=True)
    if failures:
        sys.exit(f"{len(failures)} logins failed: {sorted(set(failures))}")


@contextlib.contextmanager
def running(url: str, bodies: list[str], seconds: float):
    """The logins (one thread per body) in a process of their own, from
    START_SECS before the block until a second past `seconds` into it (a
    load generator takes a moment to start)."""
    command = [sys.executable, "-m", "bench.logins", url, str(START_SECS + seconds + 1), *bodies]
    background = subprocess.Popen(command, cwd=REPO)
    try:
        time.sleep(START_SECS)
        yield
    finally:
        background.wait()


if __name__ == "__main__":
    main()
