"""Helpers shared by the test modules and tests/bench (fixtures stay in tests/conftest.py).

- :mod:`tests.support.cli`: ``harness ARGS`` in this process (``harness``) or as a
  subprocess (``harness_process``, where the process boundary is the point), several
  subprocesses at once (``harness_processes_at_once``), ``run_json``;
- :mod:`tests.support.net`: ``free_port``, ``wait_listening``, ``wait_connections``,
  ``wait_process_connections``, ``stop``, ``tcp_pairs``;
- :mod:`tests.support.plans`: ``plan_for`` and ``run_plan`` (the real coordinator), and
  ``run_plans_at_once`` (several plans, each in a forked child, at the same time).

They are plain functions, not fixtures, so a parametrized or hypothesis test calls them as
often as it needs: ``from tests.support import harness, plan_for, run_plan``.
"""

from tests.support.cli import (
    TIMEOUT_S,
    harness,
    harness_process,
    harness_processes_at_once,
    run_json,
)
from tests.support.net import (
    free_port,
    listening,
    stop,
    tcp_pairs,
    wait_connections,
    wait_listening,
    wait_process_connections,
)
from tests.support.plans import plan_for, run_plan, run_plans_at_once

__all__ = ["TIMEOUT_S", "free_port", "harness", "harness_process",
           "harness_processes_at_once", "listening", "plan_for",
           "run_json", "run_plan", "run_plans_at_once", "stop", "tcp_pairs",
           "wait_connections", "wait_listening", "wait_process_connections"]
