"""A plan run in-process through the real coordinator (forked workers, real sockets)."""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import time
import traceback

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


def run_plans_at_once(plans: list[Plan], timeout_s: float = 120.0) -> list[list[dict]]:
    """:func:`run_plan` for each plan, all at once, each in a forked child of this process
    (its coordinator forks its workers there): for runs that mostly wait (a drain, a
    timeout) and whose figures the others' load cannot move. One list of summaries per
    plan, in order; a child's failure is raised here with its traceback."""
    children = [_fork_run(plan) for plan in plans]
    deadline = time.monotonic() + timeout_s
    out = []
    try:
        for pid, fd in children:
            out.append(_collect(pid, fd, deadline))
    finally:
        for pid, fd in children:
            _reap(pid, fd)
    return out


def _fork_run(plan: Plan) -> tuple[int, int]:
    """A child that runs ``plan`` and writes its pickled outcome to a pipe: (pid, read fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(r)
            try:
                result: object = ("ok", run_plan(plan))
            except BaseException:  # reported to the parent, which raises it
                result = ("error", traceback.format_exc())
            with os.fdopen(w, "wb") as f:
                pickle.dump(result, f)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    return pid, r


def _collect(pid: int, fd: int, deadline: float) -> list[dict]:
    data = bytearray()
    while True:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0.0))
        if not ready:
            raise TimeoutError(f"a forked run (pid {pid}) did not finish in time")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    if not data:
        raise AssertionError(f"a forked run (pid {pid}) wrote no result")
    kind, value = pickle.loads(bytes(data))
    if kind == "error":
        raise AssertionError(f"a forked run failed:\n{value}")
    return list(value)


def _reap(pid: int, fd: int) -> None:
    """Close the pipe; kill the child if it still runs; wait for it."""
    with contextlib.suppress(OSError):
        os.close(fd)
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
