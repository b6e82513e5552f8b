"""What the peer benchmarks of tests/bench share: the cores they pin to, a ``harness run``
command line pinned to the client core, and the one step of its ``--json`` summary."""

from __future__ import annotations

import json
import resource
import sys

SERVER_CPU, CLIENT_CPU = "0", "1"


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def harness_run(*args: str) -> list[str]:
    """``harness run ARGS`` with one worker, ``--json --no-report``, pinned to CLIENT_CPU."""
    return ["taskset", "-c", CLIENT_CPU, sys.executable, "-m", "harness", "run", *args,
            "--workers", "1", "--json", "--no-report"]


def the_step(returncode: int, stdout: str, stderr: str) -> dict:
    """The one step of a ``harness run --json`` that exited 0, 1 or 4 (1 and 4 are a
    threshold or client-bound verdict: the figures are still measured); SystemExit with
    its reason otherwise."""
    if returncode not in (0, 1, 4):
        raise SystemExit(f"harness exited {returncode}: {stderr.strip()}")
    (step,) = json.loads(stdout)["steps"]
    return step


def rate_cpu_errors(step: dict) -> tuple[float, float, int]:
    """A step's throughput_msgs_s, client_cpu_pct and error count."""
    return (float(step["throughput_msgs_s"]), float(step["client_cpu_pct"]),
            sum(step["errors"].values()))
