"""A search's probes: with the target and the workers up, ``bisect(probe_at)`` runs each
probe as one step and gets its figures. --over rate probes a total rate in msgs/s (spread
over the first step's connections, open loop); --over conns a connection count. No printing,
no exits: a signal or a lost worker ends the search with :class:`SearchStopped`, a target
that cannot be reached with ``Unreachable``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from harness.core.interrupts import Interrupts
from harness.core.plan import Plan
from harness.run import sweep as sweep_mod
from harness.run.lifecycle import Targets
from harness.run.sweep import Session


class SearchStopped(Exception):
    """The search ended early: ``error`` is a lost worker's error ("" for a signal), and
    ``started`` whether any probe had started."""

    def __init__(self, error: str, started: bool) -> None:
        super().__init__(error or "interrupted")
        self.error = error
        self.started = started


def search_plan(plan: Plan, over: str, load: float) -> Plan:
    """--over rate probes total msgs/s on a fixed schedule: the open loop, whatever --rate
    said (``load`` spread over the first step's connections). --over conns: ``plan``."""
    if over != "rate":
        return plan
    rate = load / plan.steps[0].conns
    return replace(plan, pacing=replace(plan.pacing, mode="open", rate=rate))


def run_probes(plan: Plan, workload: Any, over: str, bisect: Any,
               on_progress: Callable | None, probed: Callable[[], None]
               ) -> tuple[dict, list[dict]]:
    """``bisect(probe_at)`` with the target and the workers up, each probe one step; returns
    its result and each probe's figures. ``on_progress`` gets the workers' progress, and
    ``probed()`` is called after each probe."""
    base = plan.steps[0]
    tried: list[float] = []  # loads whose probe started
    summaries: list[dict] = []  # the figures of each probe that finished
    cut: list[str] = []  # why the search stopped early: a lost worker
    interrupts = Interrupts()
    with interrupts.installed():
        try:
            with Targets(plan, workload) as targets:
                plan = targets.plan
                interrupts.deferring = True  # from here a signal only stops the workers
                with Session(plan, workload, targets.addrs, targets.watch, on_progress,
                             targets.reserve, interrupts) as session:

                    def probe_at(load: float) -> dict:
                        tried.append(load)
                        step = (replace(base, rate=load / base.conns) if over == "rate"
                                else replace(base, conns=int(load)))
                        out = session.probe(step)
                        probed()
                        if out.error:
                            cut.append(out.error)
                        if out.interrupted or out.error or not out.steps:
                            raise KeyboardInterrupt
                        summary = sweep_mod.figures(
                            search_plan(plan, over, load), workload, out.steps[0],
                            session.watched(out.steps[0])).summary.to_json()
                        summaries.append(summary)
                        return summary
                    return bisect(probe_at), summaries
        except KeyboardInterrupt:
            raise SearchStopped(cut[0] if cut else "", bool(tried)) from None
