"""The load test itself, briefly: locustfile.py against run.py, with no failed request."""

import subprocess
import sys

from .processes import REPO, RunningServer


def test_the_locust_mix_runs_clean(tmp_path):
    server = RunningServer("--data-dir", str(tmp_path / "data"), "--rate-limits", "off", "--log-level", "warning")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "10", "-r", "10",
             "-t", "6s", "--host", server.base, "--only-summary", "--csv", str(tmp_path / "load")],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        assert server.stop() == 0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stats = (tmp_path / "load_stats.csv").read_text().splitlines()
    aggregated = next(line for line in stats if ",Aggregated," in line).split(",")
    requests, failures = int(aggregated[2]), int(aggregated[3])
    assert requests > 20 and failures == 0, aggregated
