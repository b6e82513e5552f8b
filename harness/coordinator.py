"""The coordinator: forks pinned worker processes, hands each its exact share of every step,
starts every phase together on shared monotonic timestamps, and collects raw results.

It computes no statistics (that is ``aggregate``); it prints nothing (that is ``cli``).
Messages over each worker's pipe (tuples): to the worker ``("step", share, deadline_ns)``,
``("go", times)``, ``("stop",)``, ``("exit",)``; from it ``("connected", n)``,
``("progress", dict)``, ``("result", WorkerResult)``, ``("error", text)``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import selectors
import signal
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

import numpy as np

from harness import netstat
from harness.plan import Plan, Step, Target
from harness.result import Share, Times, WorkerResult
from harness.worker import Worker
from workloads import Workload

SEC = 1_000_000_000
START_SLACK_NS = 50_000_000  # between "all connected" and the first send


class Unreachable(Exception):
    """No connection to a target could be made at all (exit code 3)."""


class WorkerCrashed(Exception):
    """A worker process failed; its traceback is in the message."""


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
    error: str | None = None


def raise_nofile() -> int:
    """Raise the open-files soft limit to the hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def resolve(targets: tuple[Target, ...]) -> list[tuple[int, tuple]]:
    """(family, sockaddr) per target; raises OSError (socket.gaierror) when one won't resolve."""
    out = []
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


def split(total: int, parts: int) -> list[int]:
    """``total`` split over ``parts`` exactly: no remainder dropped."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def build_shares(plan: Plan, step: Step, workload: type[Workload], key: int) -> list[Share]:
    """Global connection table for a step, dealt round-robin to the workers. Senders go
    round-robin over ``--push-hosts``; without it, over every target for echo-style
    workloads, and to the first node for broadcast (a room's senders on one node)."""
    n_nodes = len(plan.targets)
    push = plan.push_hosts or ((0,) if workload.delivery == "broadcast"
                               else tuple(range(max(n_nodes, 1))))
    node = [push[i % len(push)] for i in range(step.conns)]
    node += [n for n in range(n_nodes) for _ in range(step.listen)]
    sends = [True] * step.conns + [False] * (step.listen * n_nodes)
    total = len(node)
    budget = None
    if step.messages is not None:
        budget = np.zeros(total, dtype=np.int64)
        budget[: step.conns] = split(step.messages, max(step.conns, 1))[: step.conns]
    node_a, sends_a = np.asarray(node, dtype=np.int64), np.asarray(sends, dtype=bool)
    shares = []
    for w in range(plan.workers):
        gids = np.arange(w, total, plan.workers, dtype=np.int64)
        expect = None
        if workload.delivery == "broadcast" and step.messages is not None:
            expect = step.messages * len(gids)
        shares.append(Share(w, gids, node_a[gids], sends_a[gids],
                            None if budget is None else budget[gids], step.rate, expect, key,
                            stage_shares(step, gids)))
    return shares


def stage_shares(step: Step, gids: np.ndarray) -> tuple[tuple[float, int, float], ...]:
    """Per stage: its start (s into the measure window), how many of these connections are
    active (the global ids below the stage's count), and its rate."""
    out, start = [], 0.0
    for st in step.stages:
        out.append((start, int((gids < st.conns).sum()), st.rate))
        start += st.duration_s
    return tuple(out)


# ---------------------------------------------------------------------------- worker side


def worker_main(index: int, cpu: int | None, pipe: Connection, plan: Plan,
                workload: Workload, addrs: list[tuple]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})
    try:
        worker = Worker(index, plan, workload, addrs)
        sel = selectors.DefaultSelector()
        while True:
            msg = pipe.recv()
            if msg[0] == "exit":
                break
            if msg[0] != "step":
                continue
            _, share, deadline = msg
            worker.connect(share, sel, deadline, lambda: _stop_requested(pipe))
            pipe.send(("connected", worker.res.connected))
            msg = pipe.recv()
            if msg[0] != "go":
                worker.close_all()
                pipe.send(("result", worker.res))
                continue
            pipe.send(("result", worker.run(msg[1], _poller(pipe))))
    except (EOFError, BrokenPipeError):
        pass
    except Exception:
        with contextlib.suppress(OSError):
            pipe.send(("error", traceback.format_exc()))


def _stop_requested(pipe: Connection) -> bool:
    """Did the coordinator ask us to stop? (Only "stop" can arrive while connecting.)"""
    stop = False
    while pipe.poll():
        stop = pipe.recv()[0] == "stop" or stop
    return stop


def _poller(pipe: Connection) -> Callable[[dict], bool]:
    def poll(progress: dict) -> bool:
        pipe.send(("progress", progress))
        stop = False
        while pipe.poll():
            if pipe.recv()[0] == "stop":
                stop = True
        return not stop
    return poll


# ---------------------------------------------------------------------------- coordinator side


class Coordinator:
    def __init__(self, plan: Plan, workload: Workload, addrs: list[tuple],
                 on_progress: Callable[[Step, list[dict]], None] | None = None,
                 reserve_cores: int = 0) -> None:
        self.plan = plan
        self.workload = workload
        self.addrs = addrs
        self.on_progress = on_progress
        self.reserve = reserve_cores
        self.procs: list[mp.Process] = []
        self.pipes: list[Connection] = []

    def start(self) -> None:
        ctx = mp.get_context("fork")
        for i, cpu in enumerate(worker_cores(self.plan.workers, self.reserve)):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, name=f"harness-worker-{i}",
                            args=(i, cpu, child, self.plan, self.workload, self.addrs),
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

    def run(self, next_step: Callable[[list[StepRun]], Step | None] | None = None
            ) -> RunOutcome:
        """Run steps until ``next_step`` (given the runs so far) returns None; by default the
        plan's steps in order. Ctrl-C or a failed step keeps what was measured."""
        outcome = RunOutcome()
        if next_step is None:
            def next_step(done: list[StepRun]) -> Step | None:
                return self.plan.steps[len(done)] if len(done) < len(self.plan.steps) else None
        while (step := next_step(outcome.steps)) is not None:
            try:
                run = self.run_step(step)
            except KeyboardInterrupt:
                outcome.partial = outcome.interrupted = True
                run = self._collect_after_stop(step)
                if run is not None:
                    outcome.steps.append(run)
                break
            except WorkerCrashed as exc:
                outcome.partial = True
                outcome.error = str(exc)
                break
            outcome.steps.append(run)
            if run.partial:
                outcome.partial = True
                break
        return outcome

    def run_step(self, step: Step) -> StepRun:
        key = int(np.random.default_rng([self.plan.seed, step.index]).integers(1, 1 << 32))
        shares = build_shares(self.plan, step, type(self.workload), key)
        plan = self.plan
        total = sum(len(s.gids) for s in shares)
        connect_s = plan.connect_timeout_s + (total / plan.connect_rate
                                              if plan.connect_rate > 0 else 0)
        deadline = time.monotonic_ns() + int((connect_s + 5) * SEC)
        counters = netstat.read()
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send(("step", share, deadline))
        self._gather("connected")
        begin = time.monotonic_ns() + START_SLACK_NS
        measure = begin + int(plan.warmup_s * SEC)
        end = measure + int(step.duration_s * SEC) if step.duration_s is not None else None
        times = Times(begin, measure, end)
        for pipe in self.pipes:
            pipe.send(("go", times))
        results = self._gather("result", step)
        run = self._step_run(step, results)
        run.t_measure, run.t_end = measure, time.monotonic_ns()
        run.kernel = netstat.moved(counters, netstat.read())
        return run

    def _step_run(self, step: Step, results: list[WorkerResult]) -> StepRun:
        receivers = np.zeros(len(self.plan.targets), dtype=np.int64)
        for res in results:
            if res.node_connected is not None:
                receivers += res.node_connected
        return StepRun(step, results, receivers, any(r.partial for r in results))

    def _gather(self, kind: str, step: Step | None = None) -> list:
        """Wait for one ``kind`` message from every worker, passing progress along."""
        got: dict[int, object] = {}
        latest: dict[int, dict] = {}
        index = {id(p): i for i, p in enumerate(self.pipes)}
        while len(got) < len(self.pipes):
            pending = [p for i, p in enumerate(self.pipes) if i not in got]
            ready = wait(pending, timeout=1.0)
            if not ready:
                self._check_alive()
            for pipe in ready:
                i = index[id(pipe)]
                try:
                    msg = pipe.recv()
                except EOFError:
                    raise WorkerCrashed(f"worker {i} exited unexpectedly") from None
                if msg[0] == "error":
                    raise WorkerCrashed(f"worker {i} failed:\n{msg[1]}")
                if msg[0] == "progress":
                    latest[i] = msg[1]
                    if self.on_progress is not None and step is not None and \
                            len(latest) == len(self.pipes):
                        self.on_progress(step, list(latest.values()))
                elif msg[0] == kind:
                    got[i] = msg[1]
        return [got[i] for i in range(len(self.pipes))]

    def _check_alive(self) -> None:
        for i, p in enumerate(self.procs):
            if not p.is_alive():
                raise WorkerCrashed(f"worker {i} died (exit code {p.exitcode})")

    def _collect_after_stop(self, step: Step) -> StepRun | None:
        """After Ctrl-C: ask every worker to stop and keep what they measured."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        try:
            results = self._gather_quiet()
        except (WorkerCrashed, KeyboardInterrupt):
            return None
        if results is None:
            return None
        run = self._step_run(step, results)
        run.partial = True
        return run

    def _gather_quiet(self) -> list[WorkerResult] | None:
        deadline = time.monotonic() + 10 + self.plan.timeout_s
        got: dict[int, WorkerResult] = {}
        while len(got) < len(self.pipes) and time.monotonic() < deadline:
            for i, pipe in enumerate(self.pipes):
                if i in got or not pipe.poll(0.05):
                    continue
                msg = pipe.recv()
                if msg[0] == "connected":
                    pipe.send(("stop",))  # interrupted while connecting: don't start
                elif msg[0] == "result":
                    got[i] = msg[1]
        return [got[i] for i in range(len(self.pipes))] if len(got) == len(self.pipes) else None
