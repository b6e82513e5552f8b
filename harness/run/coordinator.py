"""The coordinator: forks pinned worker processes, hands each its exact share of every step,
starts every phase together on shared monotonic timestamps, and collects raw results.

It computes no statistics (that is ``aggregate``); it prints nothing (that is ``cli``).
Messages over each worker's pipe (tuples): to the worker ``("step", share, deadline_ns)``,
``("go", times)``, ``("stop",)``, ``("exit",)``; from it ``("connected", n)``,
``("progress", dict)``, ``("result", WorkerResult)``, ``("error", text)``.

Workers ignore SIGINT and SIGTERM: the coordinator alone reacts to a signal (see
``harness.core.interrupts``) and stops them by pipe; a coordinator killed outright (SIGKILL)
takes them with it (``PR_SET_PDEATHSIG``). A worker that dies or fails mid-step is
named (with its signal), the others finish the step, and the step is kept, marked partial.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

import numpy as np

from harness.core.interrupts import Interrupts
from harness.core.plan import Plan, Step, Target
from harness.core.result import Times, WorkerResult
from harness.core.units import SEC
from harness.run import netstat
from harness.run.shares import build_shares
from harness.run.worker_process import worker_main
from workloads import Workload

START_SLACK_NS = 50_000_000  # between "all connected" and the first send
SLOWEST_RAMP = 2_000.0  # connects/s: a step's connect deadline allows for a ramp this slow


class Unreachable(Exception):
    """No connection to a target could be made at all (exit code 3)."""


@dataclass(slots=True)
class StepRun:
    step: Step
    results: list[WorkerResult]
    receivers: np.ndarray  # connected receivers per target node (broadcast accounting)
    partial: bool = False
    t_measure: int = 0  # monotonic ns: the measure window opened
    t_end: int = 0  # monotonic ns: every worker's result was in
    kernel: dict[str, int] = field(default_factory=dict)  # host TCP drop counters that moved


@dataclass(slots=True)
class RunOutcome:
    steps: list[StepRun] = field(default_factory=list)
    partial: bool = False
    interrupted: bool = False
    error: str | None = None  # why the run was cut short: a dead or failed worker
    cluster: dict | None = None  # --cluster: machines, clock offsets, per-machine figures


def resolve(targets: tuple[Target, ...]) -> list[tuple[int, tuple]]:
    """(family, sockaddr) per target; raises OSError (socket.gaierror) when one won't resolve."""
    out: list[tuple[int, tuple]] = []
    for t in targets:
        info = socket.getaddrinfo(t.host, t.port, 0, socket.SOCK_STREAM)
        family, _, _, _, addr = info[0]
        out.append((family, addr))
    return out


def probe(targets: tuple[Target, ...], addrs: list[tuple], timeout_s: float) -> None:
    """One plain connect to each target; Unreachable names the first one that fails."""
    for t, (family, addr) in zip(targets, addrs, strict=True):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout_s)
        try:
            s.connect(addr)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise Unreachable(f"target {t.label} cannot be reached: {reason}") from None
        finally:
            s.close()


def worker_cores(workers: int, reserve: int) -> list[int]:
    cores = sorted(os.sched_getaffinity(0))
    usable = cores[: len(cores) - reserve] if len(cores) > reserve else cores
    return [usable[i % len(usable)] for i in range(workers)]


class Coordinator:
    def __init__(self, plan: Plan, workload: Workload, addrs: list[tuple],
                 on_progress: Callable[[Step, list[dict]], None] | None = None,
                 reserve_cores: int = 0, interrupts: Interrupts | None = None) -> None:
        self.plan = plan
        self.workload = workload
        self.addrs = addrs
        self.on_progress = on_progress
        self.reserve = reserve_cores
        self.interrupts = interrupts
        self.procs: list[mp.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        self.lost: dict[int, str] = {}  # worker index -> why it is gone
        # With --cluster (harness.run.agent): given the connections made, the monotonic ns at
        # which sending starts (a wall-clock time agreed by every machine), or None to
        # refuse the step (that time is missed); None here: START_SLACK_NS from now.
        self.start_at: Callable[[int], int | None] | None = None
        self.shifts: tuple[tuple[int, int], ...] = ()  # set by start_at: see Times.shifts

    def start(self) -> None:
        ctx = mp.get_context("fork")
        for i, cpu in enumerate(worker_cores(self.plan.workers, self.reserve)):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, name=f"harness-worker-{i}",
                            args=(i + (self.plan.part.first_worker if self.plan.part else 0),
                                  cpu, child, self.plan, self.workload, self.addrs,
                                  os.getpid()),
                            daemon=True)
            p.start()
            child.close()
            self.procs.append(p)
            self.pipes.append(parent)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("exit",))
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=2)
        self.procs, self.pipes = [], []

    def __enter__(self) -> Coordinator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def live(self) -> list[int]:
        """Indices of the workers still taking part."""
        return [i for i in range(len(self.pipes)) if i not in self.lost]

    def run(self, next_step: Callable[[list[StepRun]], Step | None] | None = None
            ) -> RunOutcome:
        """Run steps until ``next_step`` (given the runs so far) returns None; by default the
        plan's steps in order. A signal or a lost worker keeps what was measured and ends
        the run after that step (marked partial)."""
        outcome = RunOutcome()
        if next_step is None:
            def next_step(done: list[StepRun]) -> Step | None:
                return self.plan.steps[len(done)] if len(done) < len(self.plan.steps) else None
        while (step := next_step(outcome.steps)) is not None:
            if self._interrupted() or self.lost:
                outcome.partial = True
                outcome.interrupted = self._interrupted()
                break
            try:
                run = self.run_step(step)
            except KeyboardInterrupt:
                outcome.partial = outcome.interrupted = True
                run = self._collect_after_stop(step)
            if run is not None:
                outcome.steps.append(run)
            if run is None or run.partial or self.lost:
                outcome.partial = True
                break
        if self.lost:
            outcome.error = "; ".join(self.lost[i] for i in sorted(self.lost))
        return outcome

    def run_step(self, step: Step) -> StepRun | None:
        """One step on every live worker; None when no worker returned a result."""
        key = int(np.random.default_rng([self.plan.seed, step.index]).integers(1, 1 << 32))
        shares = build_shares(self.plan, step, type(self.workload), key)
        plan = self.plan
        total = sum(len(s.gids) for s in shares)
        pace = min(plan.connect_rate or SLOWEST_RAMP, SLOWEST_RAMP)  # a bound, not a wait
        connect_s = plan.connect_timeout_s + total / pace
        deadline = time.monotonic_ns() + int((connect_s + 5) * SEC)
        counters = netstat.read()
        for i in self.live:
            self._send(i, ("step", shares[i], deadline))
        connected = self._gather("connected")
        begin = (time.monotonic_ns() + START_SLACK_NS if self.start_at is None
                 else self.start_at(sum(connected)))
        if begin is None:  # the agreed start is missed: the workers close without sending
            for i in self.live:
                self._send(i, ("stop",))
            self._gather("result")
            return None
        measure = begin + int(plan.warmup_s * SEC)
        end = measure + int(step.duration_s * SEC) if step.duration_s is not None else None
        times = Times(begin, measure, end, self.shifts)
        for i in self.live:
            self._send(i, ("go", times))
        results = self._gather("result", step)
        if not results:
            return None
        run = self._step_run(step, results)
        run.t_measure, run.t_end = measure, time.monotonic_ns()
        run.kernel = netstat.moved(counters, netstat.read())
        return run

    def _step_run(self, step: Step, results: list[WorkerResult]) -> StepRun:
        receivers = np.zeros(len(self.plan.targets), dtype=np.int64)
        for res in results:
            if res.node_connected is not None:
                receivers += res.node_connected
        partial = bool(self.lost) or any(r.partial for r in results)
        return StepRun(step, results, receivers, partial)

    def _send(self, i: int, msg: tuple) -> None:
        try:
            self.pipes[i].send(msg)
        except OSError:
            self._lose(i)

    def _interrupted(self) -> bool:
        return self.interrupts is not None and self.interrupts.requested

    def _gather(self, kind: str, step: Step | None = None) -> list:
        """Wait for one ``kind`` message from every live worker, passing progress along.
        A worker that dies or fails meanwhile is lost; the others' messages still count.
        A recorded signal raises KeyboardInterrupt here, between two messages."""
        got: dict[int, object] = {}
        latest: dict[int, dict] = {}
        index = {id(p): i for i, p in enumerate(self.pipes)}
        wake = [self.interrupts.fileno()] if self.interrupts is not None else []
        while pending := [self.pipes[i] for i in self.live if i not in got]:
            if self._interrupted():
                raise KeyboardInterrupt
            ready = wait([*pending, *wake], timeout=1.0)
            if not ready:
                self._check_alive()
            for pipe in ready:
                if isinstance(pipe, int):  # the interrupts' wake-up fd
                    continue
                i = index[id(pipe)]
                msg = self._recv(i)
                if msg is None:
                    continue
                if msg[0] == "progress":
                    latest[i] = msg[1]
                    if self.on_progress is not None and step is not None and \
                            len(latest) >= len(self.live):
                        self.on_progress(step, list(latest.values()))
                elif msg[0] == kind:
                    got[i] = msg[1]
        return [got[i] for i in sorted(got) if i not in self.lost]

    def _recv(self, i: int) -> tuple | None:
        """Worker ``i``'s next message; None (and the worker lost) if it died or failed."""
        try:
            msg = self.pipes[i].recv()
        except (EOFError, OSError):
            self._lose(i)
            return None
        if msg[0] == "error":
            self._lose(i, f"worker {i} failed:\n{msg[1]}")
            return None
        return msg

    def _lose(self, i: int, why: str | None = None) -> None:
        if i not in self.lost:
            self.lost[i] = why or f"worker {i} {self._death(i)}"

    def _death(self, i: int) -> str:
        """How worker ``i`` ended: 'was killed by SIGKILL', 'exited with code 1', ..."""
        p = self.procs[i]
        p.join(timeout=2)
        code = p.exitcode
        if code is None:
            return f"(pid {p.pid}) stopped answering"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"(pid {p.pid}) was killed by {signal.Signals(-code).name}"
            return f"(pid {p.pid}) was killed by signal {-code}"
        return f"(pid {p.pid}) exited unexpectedly with code {code}"

    def _check_alive(self) -> None:
        for i in self.live:
            if not self.procs[i].is_alive():
                self._lose(i)

    def _collect_after_stop(self, step: Step) -> StepRun | None:
        """After a signal: ask every live worker to stop and keep what they measured."""
        for i in self.live:
            self._send(i, ("stop",))
        try:
            results = self._gather_quiet()
        except KeyboardInterrupt:  # a second Ctrl-C where signals are not deferred
            return None
        if not results:
            return None
        run = self._step_run(step, results)
        run.partial = True
        return run

    def _gather_quiet(self) -> list[WorkerResult]:
        """The stopped workers' results, within a bound; one that does not answer is lost."""
        deadline = time.monotonic() + 10 + self.plan.timeout_s
        got: dict[int, WorkerResult] = {}
        while (waiting := [i for i in self.live if i not in got]) and \
                time.monotonic() < deadline:
            ready = wait([self.pipes[i] for i in waiting], timeout=0.2)
            if not ready:
                self._check_alive()
            for i in waiting:
                if self.pipes[i] not in ready:
                    continue
                msg = self._recv(i)
                if msg is None:
                    continue
                if msg[0] == "connected":
                    self._send(i, ("stop",))  # interrupted while connecting: don't start
                elif msg[0] == "result":
                    got[i] = msg[1]
        for i in self.live:
            if i not in got:
                self._lose(i, f"worker {i} gave no result within "
                              f"{10 + self.plan.timeout_s:g} s of being stopped")
        return [got[i] for i in sorted(got)]
