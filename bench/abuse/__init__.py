"""The attacks of issue 15, rerun at their sizes against `run.py` at its
defaults, with a second user measuring that they are still served:
`python -m bench.abuse` (see docs/limits.md, "Checking it")."""
