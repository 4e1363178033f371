"""How every server process here runs its event loop: uvloop, the same for
the chat server and the benchmark's bare handler."""

import asyncio
from collections.abc import Coroutine

import uvloop


def run(main: Coroutine) -> None:
    """Runs `main` to completion on a fresh uvloop event loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
