"""Which steps run, and who watches them: a session owns the coordinator (workers) and the
resource monitor, runs a fixed sweep, an until-degraded sweep, or single probes for a
search, and returns raw step runs with their resource samples. No printing, no exits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.analysis import aggregate, bottleneck, judge
from harness.analysis.capacity import next_load
from harness.core.interrupts import Interrupts
from harness.core.plan import Plan, Step
from harness.core.units import SEC
from harness.core.users import class_counts
from harness.run.coordinator import Coordinator, RunOutcome, StepRun
from harness.run.monitor import Monitor, listener_pids


@dataclass(slots=True)
class Watched:
    """One step's resource samples (rows as in monitor.samples, seconds from the window
    start) and per-role summary."""

    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    cores: dict = field(default_factory=dict)  # core -> busy and others' CPU % (means)
    others: list = field(default_factory=list)  # the busiest other processes (pid, name, %)


class Session:
    def __init__(self, plan: Plan, workload: Any, addrs: list, servers: dict[str, int],
                 on_progress: Callable | None = None, reserve_cores: int = 0,
                 interrupts: Interrupts | None = None) -> None:
        self.plan = plan
        self.workload = workload
        self.servers = servers
        self.coord = Coordinator(plan, workload, addrs, on_progress, reserve_cores, interrupts)
        self.monitor: Monitor | None = None

    def __enter__(self) -> Session:
        try:
            self.coord.start()
            roles = {f"worker{i}": p.pid for i, p in enumerate(self.coord.procs)
                     if p.pid is not None}
            roles.update(self.servers)
            self.monitor = Monitor(roles, interval=self.plan.monitor_interval_s,
                                   known=local_targets(self.plan))
            self.monitor.start()
        except BaseException:
            self.__exit__()  # workers ignore SIGTERM: only their pipe stops them
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.monitor is not None:
            self.monitor.stop()  # before the workers exit, so their exit is no "death"
        self.coord.stop()

    @property
    def warnings(self) -> list[str]:
        return list(self.monitor.warnings) if self.monitor else []

    def sweep(self, on_step: Callable[[StepRun], None] | None = None) -> RunOutcome:
        """The plan's steps (or an until-degraded sweep); ``on_step`` is called with each
        step run as it ends, before the next starts (the last when the sweep ends)."""
        nxt = (until_degraded(self.plan, self.workload, self.watched)
               if self.plan.until_degraded else fixed_steps(self.plan))
        return self.coord.run(announcing(nxt, on_step) if on_step else nxt)

    def probe(self, step: Step) -> RunOutcome:
        """One step on its own (a search probe)."""
        return self.coord.run(lambda done: None if done else step)

    def watched(self, run: StepRun) -> Watched:
        if self.monitor is None or not run.t_measure:
            return Watched()
        rows = self.monitor.samples(since_ns=run.t_measure, until_ns=run.t_end)
        for r in rows:
            r["second"] = (r["t_ns"] - run.t_measure) / SEC
        summary = self.monitor.summary(since_ns=run.t_measure, until_ns=run.t_end)
        worst = bottleneck.shared_core(summary)  # the core whose other load is named
        others = self.monitor.other_procs(run.t_measure, run.t_end,
                                          worst["core"] if worst else None)
        return Watched(rows, summary, self.monitor.cores(run.t_measure, run.t_end), others)


def fixed_steps(plan: Plan) -> Callable[[list[StepRun]], Step | None]:
    def next_step(done: list[StepRun]) -> Step | None:
        return plan.steps[len(done)] if len(done) < len(plan.steps) else None
    return next_step


def announcing(next_step: Callable[[list[StepRun]], Step | None],
               on_step: Callable[[StepRun], None]) -> Callable[[list[StepRun]], Step | None]:
    """``next_step`` that first calls ``on_step`` with each step run not yet announced."""
    told = 0

    def wrapped(done: list[StepRun]) -> Step | None:
        nonlocal told
        for run in done[told:]:
            on_step(run)
        told = len(done)
        return next_step(done)
    return wrapped


LOOPBACK = ("127.", "::1", "localhost")


def local_targets(plan: Plan) -> set[int]:
    """Pids of the processes serving a loopback target: their CPU is the server's, never a
    busy machine's."""
    ports = {t.port for t in plan.targets if t.host.startswith(LOOPBACK)}
    return listener_pids(ports) if ports else set()


def until_degraded(plan: Plan, workload: Any,
                   watched: Callable[[StepRun], Watched] | None = None
                   ) -> Callable[[list[StepRun]], Step | None]:
    """The plan's steps, then steps that grow (double, or add ``increment`` connections)
    from the last, until the degradation rule fires or ``max_conns`` is passed. With
    ``watched``, steps on a shared core are left out of that judgement, as they are of the
    final verdict."""
    first = plan.steps[0]

    def summary(run: StepRun) -> dict:
        w = watched(run) if watched is not None else None
        return figures(plan, workload, run, w).summary.to_json()

    def next_step(done: list[StepRun]) -> Step | None:
        if not done:
            return first
        summaries = [summary(r) for r in done]
        verdict = judge.degradation(summaries, plan.degradation)
        if verdict["degraded_at"] is not None:
            return None
        if len(done) < len(plan.steps):  # the listed steps first (baseline, stress, ...)
            return plan.steps[len(done)]
        conns = next_load(done[-1].step.conns, plan.grow, plan.increment, plan.max_conns)
        return None if conns is None else replace(first, index=len(done), conns=int(conns))

    return next_step


def figures(plan: Plan, workload: Any, run: StepRun, watched: Watched | None = None,
            trend: bool = False) -> aggregate.StepFigures:
    """A step run's figures: its summary with what the coordinator saw (cut short, kernel
    drops, each node's target), the resources ``watched`` (when sampled) and, with
    ``trend``, the p99 and server memory trend of a long step."""
    kinds = plan.mix or workload.kinds()
    f = aggregate.step_figures(run.step, run.results, run.receivers, workload.delivery,
                               [k.name for k in kinds], plan.pacing.mode == "open")
    s = replace(f.summary, partial=f.summary.partial or run.partial,
                kernel=dict(run.kernel) if run.kernel else None,
                users=class_counts(run.step.conns, plan.users) if plan.users else None)
    if s.fanout is not None:
        nodes = [dict(n, target=plan.targets[n["node"]].label) for n in s.fanout["per_node"]]
        s = replace(s, fanout=dict(s.fanout, per_node=nodes))
    if watched is not None and watched.summary:
        s = bottleneck.with_resources(s, watched.summary, watched.cores, watched.others,
                                     plan.shared_core_pct, plan.judge_shared_core)
    if plan.judge_shared_core:
        s = bottleneck.judge_waits(s)
    if trend:
        s = replace(s, trend=aggregate.trend_figures(f.series, watched.rows if watched else []))
    return replace(f, summary=s)
