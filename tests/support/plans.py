"""A plan run in-process through the real coordinator (forked workers, real sockets)."""

from __future__ import annotations

from harness.config import build as cfg
from harness.core.plan import Plan
from harness.run.coordinator import Coordinator, resolve
from harness.run.sweep import figures
from workloads import load


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
