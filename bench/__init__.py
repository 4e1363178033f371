"""The benchmark: `python -m bench` (see docs/benchmarks.md)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # where its helper processes start
