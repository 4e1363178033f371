"""Starting `run.py` the way the README does, for end-to-end tests."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from .apiclient import ApiClient

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    def __init__(self, *args, port: int | None = None, preexec_fn=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "run.py", "--port", str(self.port), "--bcrypt-cost", "4", *args]
        # A file, not a pipe: nobody reads a pipe while the test runs, and a full one blocks the server.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.base + "/api/chats", timeout=1)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    self.log.seek(0)
                    raise RuntimeError("run.py did not start:\n" + self.log.read().decode())
                time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def children(self) -> list[int]:
        """Pids of this server's direct child processes."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        if int(stat.read().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                            found.append(int(entry))
                except (OSError, IndexError, ValueError):
                    continue
        return found


async def user_on(http_client, server, name=None):
    """A user registered through `server`, with their logged-in client."""
    client = ApiClient(http_client, server.base)
    assert (await client.register(name)).code == 201
    return client
