"""``harness run --cluster``: one plan split over several client machines (harness agents,
i.e. Dask workers), every step started on all of them at one agreed wall-clock time, their
worker results merged exactly (histograms added; percentiles only after the merge).

The coordinating side only: what an agent runs is :mod:`harness.run.agent`. Units: ns (wall
clock ``time.time_ns``, this machine's ``time.monotonic_ns``), ms in the breakdown.
No printing, no exits: :class:`ClusterError` carries the one line for exit 2.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness.analysis import aggregate
from harness.core.interrupts import Interrupts
from harness.core.plan import MachinePart, Plan, Step
from harness.core.result import WorkerResult
from harness.core.units import SEC
from harness.run import agent
from harness.run.coordinator import RunOutcome, StepRun
from harness.run.scaleout_agents import ClusterError, Machine, describe, discover
from harness.run.scaleout_parts import (
    fanout_shifted,
    machine_deliveries,
    machine_parts,
    merged_watched,
    shifted,
    split_step,
)
from harness.run.sweep import Watched, until_degraded

LEAD_S = 1.0  # the agreed start is this far ahead of the moment every machine connected
CONNECT_S = 5.0  # connecting to the scheduler


@dataclass(slots=True)
class StepParts:
    """Who ran what of one step."""

    rows: list[dict] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


class ClusterSession:
    """The Session of a ``--cluster`` run: same interface (sweep, watched, warnings)."""

    def __init__(self, plan: Plan, workload: Any, address: str,
                 on_progress: Callable | None = None, interrupts: Interrupts | None = None
                 ) -> None:
        self.plan, self.workload, self.address = plan, workload, address
        self.on_progress, self.interrupts = on_progress, interrupts
        self.client: Any = None
        self.machines: list[Machine] = []
        self.run_id = uuid.uuid4().hex[:12]
        self.lead_ns = int(float(os.environ.get("HARNESS_CLUSTER_LEAD_S", LEAD_S)) * SEC)
        self.breakdown: list[dict] = []
        self.noticed: dict[str, int] = {}  # machine -> wall ns its loss was seen
        self.warnings: list[str] = []
        self._places: dict[str, MachinePart] = {}  # this step's, by machine name
        self._watched: dict[int, Watched] = {}  # step index -> the machines' samples

    def __enter__(self) -> ClusterSession:
        distributed = agent.need_distributed()
        if not agent.is_address(self.address):
            raise ClusterError(f"--cluster: {self.address!r} is not a scheduler address "
                               "(tcp://HOST:PORT or tls://HOST:PORT)")
        try:
            self.client = distributed.Client(self.address, timeout=CONNECT_S,
                                             set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"--cluster: cannot reach the scheduler at {self.address}: "
                               f"{exc}") from None
        try:
            self.machines = discover(self.client)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def watched(self, run: StepRun) -> Watched:
        """The step's resource samples from every agent, merged (see merged_watched)."""
        return self._watched.get(run.step.index, Watched())

    def sweep(self, on_step: Callable[[StepRun], None] | None = None) -> RunOutcome:
        """The plan's steps over the agents; ``on_step`` is called with each step run as
        it ends (as :meth:`harness.run.sweep.Session.sweep`)."""
        next_step = (until_degraded(self.plan, self.workload, self.watched)
                     if self.plan.until_degraded
                     else lambda done: self.plan.steps[len(done)]
                     if len(done) < len(self.plan.steps) else None)
        outcome, errors = RunOutcome(), []
        while (step := next_step(outcome.steps)) is not None:
            if self._interrupted():
                outcome.partial = outcome.interrupted = True
                break
            run, parts = self.run_step(step)
            if self._interrupted():
                outcome.partial = outcome.interrupted = True
            errors += parts.lost
            if run is not None:
                outcome.steps.append(run)
                if on_step is not None:
                    on_step(run)
            if run is None or run.partial or parts.lost:
                outcome.partial = True
                break
        outcome.error = "; ".join(errors) or None
        outcome.cluster = self.document()
        return outcome

    def document(self) -> dict:
        """run.json's ``cluster``: the machines (clock offsets) and each step's parts."""
        return {"scheduler": self.address,
                "machines": [{"name": m.name, "address": m.address, "cores": m.cores,
                              "clock_offset_ms": round(m.offset_ns / 1e6, 3),
                              "clock_rtt_ms": round(m.rtt_ns / 1e6, 3)}
                             for m in self.machines],
                "steps": self.breakdown}

    # ------------------------------------------------------------------------ one step

    def run_step(self, step: Step) -> tuple[StepRun | None, StepParts]:
        shares = split_step(step, [m.cores for m in self.machines])
        busy = [(m, s) for m, s in zip(self.machines, shares, strict=True)
                if s.conns or s.listen]
        places = machine_parts(step, [s for _, s in busy], [self._workers(m, s) for m, s in busy],
                               len(self.plan.targets))
        futures = {self._submit(m, s, p): (m, s) for (m, s), p in zip(busy, places, strict=True)}
        self._places = {m.name: p for (m, _), p in zip(busy, places, strict=True)}
        parts = StepParts()
        connected, lost, clocks = self._await_connected(step, futures)
        start_wall = time.time_ns() + self.lead_ns
        begin = time.monotonic_ns() + self.lead_ns
        from distributed import Variable
        # the start, and each machine's first worker and monotonic ns at wall-clock 0: a
        # receiver reads any sender's stamp times in its own clock (broadcast windows)
        table = sorted((p.first_worker, clocks[name]) for name, p in self._places.items()
                       if name in clocks)
        Variable(agent.names(self.run_id, step.index)[1], client=self.client).set(
            (-1, []) if lost else (start_wall, table))
        done = self._await_parts(step, futures, lost)
        run = self._merge(step, done, begin, parts)
        parts.lost += [f"machine {m.name} ({m.address}) {why}" for m, why in lost.items()]
        shares_of = {m.name: s for m, s in futures.values()}
        for m, why in lost.items():
            parts.rows.append({"machine": m.name, "conns": shares_of[m.name].conns,
                               "lost": why, "noticed_wall_ns": self.noticed.get(m.name)})
        self.breakdown.append({"step": step.index, "start_wall_ns": start_wall,
                               "connected": connected, "machines": parts.rows})
        if run is not None and lost:
            run.partial = True
        return run, parts

    def _interrupted(self) -> bool:
        return self.interrupts is not None and self.interrupts.requested

    def _workers(self, m: Machine, share: Step) -> int:
        return agent.workers_for(m.cores, share.conns + share.listen
                                 * max(len(self.plan.targets), 1))

    def _submit(self, m: Machine, share: Step, place: MachinePart) -> Any:
        plan = replace(self.plan, steps=(share,), workers=self._workers(m, share), part=place)
        job = agent.Job(self.run_id, m.name, plan, self.workload, self._connect_s(share) + 30)
        return self.client.submit(agent.run_share, job, workers=[m.address],
                                  allow_other_workers=False, pure=False,
                                  key=f"harness-{self.run_id}-{share.index}-{m.name}")

    def _connect_s(self, step: Step) -> float:
        p = self.plan
        return p.connect_timeout_s + 5 + (step.conns / p.connect_rate if p.connect_rate else 0)

    def _await_connected(self, step: Step, futures: dict
                         ) -> tuple[int, dict[Machine, str], dict[str, int]]:
        """Connections made on every machine, once all have connected, and each machine's
        monotonic ns at wall-clock 0; a machine whose task failed meanwhile is lost (named
        by the future's error)."""
        from distributed import Queue
        queue = Queue(agent.names(self.run_id, step.index)[0], client=self.client)
        waiting = {m.name: m for m, _ in futures.values()}
        lost: dict[Machine, str] = {}
        total, deadline = 0, time.monotonic() + self._connect_s(step) + 30
        clocks: dict[str, int] = {}
        while waiting and time.monotonic() < deadline:
            for name, n, clock in queue.get(batch=True):
                total += n
                clocks[name] = clock
                waiting.pop(name, None)
            for fut, (m, _) in futures.items():
                if m.name in waiting and fut.done():
                    waiting.pop(m.name)
                    if fut.status == "error":
                        lost[m] = describe(fut)
                        self.noticed.setdefault(m.name, time.time_ns())
            if waiting:
                time.sleep(0.02)
        for name in waiting:
            lost[next(m for m, _ in futures.values() if m.name == name)] = (
                "did not connect in time")
        return total, lost, clocks

    def _await_parts(self, step: Step, futures: dict, lost: dict[Machine, str]
                     ) -> list[tuple[Machine, agent.Part]]:
        """Every machine's part, passing progress along; a machine that dies is named at once
        (allowed-failures 0 fails its task) and the others' parts are kept."""
        from distributed import Queue
        progress = Queue(agent.names(self.run_id, step.index)[2], client=self.client)
        pending = {f for f, (m, _) in futures.items() if m not in lost}
        for f, (m, _) in futures.items():
            if m in lost:
                f.cancel()
        latest: dict[str, list] = {}
        done: list[tuple[Machine, agent.Part]] = []
        stopping, bound = False, self._bound_s(step)
        deadline = time.monotonic() + bound
        while pending and time.monotonic() < deadline:
            stopping = stopping or self._stop_agents()
            time.sleep(0.05)
            finished = {f for f in pending if f.done()}
            pending -= finished
            self._pass_progress(step, progress, latest, len(futures))
            for fut in finished:
                m, _ = futures[fut]
                if fut.status == "error":
                    lost.setdefault(m, describe(fut))
                    self.noticed.setdefault(m.name, time.time_ns())
                else:
                    done.append((m, fut.result()))
        for fut in pending:
            m, _ = futures[fut]
            lost[m] = f"gave no result within {bound:.0f} s"
            fut.cancel()
        return done

    def _stop_agents(self) -> bool:
        """On Ctrl-C: set the run's stop Event (every agent stops its step); True if set."""
        if not self._interrupted():
            return False
        from distributed import Event
        Event(agent.stop_name(self.run_id), client=self.client).set()
        return True

    def _pass_progress(self, step: Step, queue: Any, latest: dict[str, list], n: int) -> None:
        """The agents' latest progress rows, to the live line once every one has sent some."""
        for name, index, rows in queue.get(batch=True):
            if index == step.index:
                latest[name] = rows
        if self.on_progress is not None and latest and len(latest) >= n:
            self.on_progress(step, [r for rows in latest.values() for r in rows])

    def _bound_s(self, step: Step) -> float:
        """The longest a step may take on an agent before it counts as lost."""
        p = self.plan
        run_s = step.duration_s if step.duration_s is not None else 3600.0
        return self.lead_ns / SEC + p.warmup_s + run_s + p.timeout_s + 60.0

    def _merge(self, step: Step, done: list[tuple[Machine, agent.Part]], begin: int,
               parts: StepParts) -> StepRun | None:
        results: list[WorkerResult] = []
        receivers = np.zeros(len(self.plan.targets), dtype=np.int64)
        partial = False
        done = sorted(done, key=lambda d: d[0].name)
        deltas = {m.name: begin - part.begin_mono if part.begin_mono else 0 for m, part in done}
        sender_delta = self._sender_delta(deltas)
        mine_of, offsets = [], {}
        for m, part in done:
            offsets[m.name] = len(results)
            mine = [shifted(r, deltas[m.name], len(results) + i)
                    for i, r in enumerate(part.results)]
            for r in mine:
                fanout_shifted(r, deltas[m.name], sender_delta)
            mine_of.append(mine)
            results += mine
        room_sent = sum(r.sent for r in results)
        for (m, part), mine in zip(done, mine_of, strict=True):
            parts.rows.append(self._row(m, part, mine, begin, room_sent))
            if part.refused:
                parts.lost.append(f"machine {m.name} refused step {step.index}: "
                                  f"{part.refused}")
            if part.error:
                parts.lost.append(f"machine {m.name}: {part.error}")
            if part.receivers is not None:
                receivers += part.receivers
            partial = partial or part.partial
        if not results:
            return None
        run = StepRun(step, results, receivers, partial)
        run.t_measure = begin + int(self.plan.warmup_s * SEC)
        run.t_end = time.monotonic_ns()
        self._watched[step.index] = merged_watched(done, offsets, deltas, run.t_measure)
        self.warnings += [f"machine {m.name}: {w}" for m, part in done for w in part.warnings
                          if f"machine {m.name}: {w}" not in self.warnings]
        return run

    def _sender_delta(self, deltas: dict[str, int]) -> Callable:
        """Stamps' worker indices -> the delta of the machine that ran each worker (0 for
        a machine that gave no result)."""
        places = sorted((p.first_worker, deltas.get(name, 0))
                        for name, p in self._places.items())
        firsts = np.array([f for f, _ in places] or [0], dtype=np.int64)
        ds = np.array([d for _, d in places] or [0], dtype=np.int64)
        return lambda w: ds[np.maximum(np.searchsorted(firsts, w, side="right") - 1, 0)]

    def _row(self, m: Machine, part: agent.Part, results: list[WorkerResult], begin: int,
             room_sent: int) -> dict:
        """One machine's figures of one step (its own histograms merged)."""
        row: dict[str, Any] = {"machine": m.name, "conns": part.step.conns,
                               "workers": len(results), "partial": part.partial}
        if part.refused:
            row["refused"] = part.refused
        starts = [r.first_send for r in results if r.first_send]
        if starts and part.begin_mono:  # its first send after the measure window opened
            measure = begin + int(self.plan.warmup_s * SEC)
            row["start_late_us"] = round((min(starts) - measure) / 1e3, 1)
        if results:
            kinds = self.plan.mix or self.workload.kinds()
            receivers = (part.receivers if part.receivers is not None
                         else np.zeros(len(self.plan.targets), dtype=np.int64))
            f = aggregate.step_figures(part.step, results, receivers,
                                       self.workload.delivery, [k.name for k in kinds],
                                       self.plan.pacing.mode == "open").summary.to_json()
            row.update({k: f[k] for k in ("sent", "received", "throughput_msgs_s",
                                          "latency_ms", "errors", "lost") if k in f})
            if self.workload.delivery == "broadcast":
                row.update(machine_deliveries(results, receivers, room_sent))
        return row
