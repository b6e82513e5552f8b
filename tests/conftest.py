"""Helpers shared by the test modules: the CLI as a subprocess (``python -m harness``), and a
plan run in-process through the real coordinator (forked workers, real sockets).

Import them (``from tests.conftest import harness, plan_for, run_plan``): they are plain
functions, not fixtures, so a parametrized or hypothesis test calls them as often as it needs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from harness import config as cfg
from harness.coordinator import Coordinator, resolve
from harness.plan import Plan
from harness.sweep import figures
from workloads import load

TIMEOUT_S = 180.0  # per CLI call: the longest any test module allowed before the helpers merged


def harness(*args: str, cwd: Path | str, timeout: float = TIMEOUT_S, text: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` run to completion in ``cwd``, stdin closed, stdout and
    stderr captured (str when ``text``, else bytes). ``env`` replaces the environment
    (None: inherit it, so ``PYTHONPATH`` picks the code under test)."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=text, stdin=subprocess.DEVNULL,
                          env=None if env is None else dict(env))


def free_port() -> int:
    """A loopback port nothing listens on now (for servers that cannot take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen) -> None:
    """Stop a server process a test started: SIGTERM, then SIGKILL after 5 s."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def plan_for(host: str, **run: object) -> Plan:
    """A short closed-loop plan against ``host`` (one worker, 4 conns, 0.2 s warm-up, 1 s),
    with ``run`` overriding any ``[run]`` setting by its flag name."""
    flags = {"host": host, "warmup": 0.2, "duration": 1.0, "workers": 1, "conns": "4",
             "timeout": 1.0}
    flags.update(run)
    if "messages" in run:
        flags.pop("duration")  # the two exclude each other
    return cfg.build_plan(cfg.settings({}, flags))


def run_plan(plan: Plan) -> list[dict]:
    """Every step of ``plan`` through the real coordinator: one summary dict per step."""
    workload = load(plan.workload)(plan.size_spec or plan.size, plan.seed)
    with Coordinator(plan, workload, resolve(plan.targets)) as coord:
        outcome = coord.run()
    assert not outcome.error, outcome.error
    return [figures(plan, workload, r).summary for r in outcome.steps]
