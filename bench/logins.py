"""Ten logins at a time, back to back, for a while: `python -m bench.logins URL BODY SECONDS`."""

import http.client
import sys
import threading
import time
import urllib.parse

CONCURRENT_LOGINS = 10


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
    url, body, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    deadline = time.monotonic() + seconds
    failures: list[int] = []
    done: list[int] = []
    threads = [
        threading.Thread(target=keep_logging_in, args=(url, body, deadline, failures, done))
        for _ in range(CONCURRENT_LOGINS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"logins: {len(done)} in {seconds:g}s ({len(done) / seconds:.1f}/s), {len(failures)} failed", flush=True)
    if failures:
        sys.exit(f"{len(failures)} logins failed: {sorted(set(failures))}")


if __name__ == "__main__":
    main()
