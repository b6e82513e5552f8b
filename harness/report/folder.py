"""What a finished run leaves behind: each step's figures, the degradation verdict and the
threshold failures, run.json with the per-second CSV series, and the HTML report. No
printing and no exits: :mod:`harness.cli` shows the :class:`Written` this returns.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.analysis import judge
from harness.core.plan import Plan
from harness.report import document, exports
from harness.report import results as results_mod

if TYPE_CHECKING:  # merge reads runs without the worker stack (sweep imports it)
    from harness.run.coordinator import RunOutcome


@dataclass(frozen=True, slots=True)
class Written:
    """A run's summary (``doc``, as ``--json`` prints it) and what was written: run.json's
    ``path`` (None when ``unwritten`` says why not), the HTML ``page`` (None when skipped
    or when ``html_error`` says why it failed)."""

    doc: dict
    steps: list[dict]
    verdict: dict
    failures: list[str]
    path: Any
    unwritten: str | None
    page: Any
    html_error: str | None
    export_problems: tuple[str, ...] = ()  # .hlog / metrics.prom not written, one line each
    full: dict | None = None  # run.json as written (with histograms)


def write_run(plan: Plan, workload: Any, outcome: RunOutcome, started: float, html: bool,
              watched: list | None, warnings: list[str] | None) -> Written:
    """Figures of every step measured, judged and written to results/<time>-<name>/."""
    from harness.run import sweep as sweep_mod
    watched = watched or [None] * len(outcome.steps)
    figures = [sweep_mod.figures(plan, workload, r, w, trend=True)
               for r, w in zip(outcome.steps, watched, strict=True)]
    steps = [f.summary.to_json() for f in figures]
    measure_starts(steps, outcome)
    verdict = judge.degradation(steps, plan.degradation)
    failures = judge.threshold_failures(steps, plan.thresholds)
    doc = document.run_document(plan, workload, outcome.partial, steps, verdict, failures,
                                started, sys.argv[1:])
    doc["warnings"] = warnings or []
    if outcome.cluster is not None:
        doc["cluster"] = outcome.cluster
    folder = results_mod.run_dir(plan.results_dir, plan.name, started)
    full = document.with_histograms(doc, [f.histograms for f in figures],
                                    [f.second_hists for f in figures])
    monitor_rows = [w.rows if w is not None else [] for w in watched]
    path, unwritten = write_results(folder, full, [f.series for f in figures], monitor_rows)
    exported = tuple(exports.write_exports(folder, full)) if path else ()
    page, html_error = write_html_report(folder) if html and path else (None, None)
    return Written(doc, steps, verdict, failures, path, unwritten, page, html_error, exported,
                   full)


def measure_starts(steps: list[dict], outcome: RunOutcome) -> None:
    """Each step's ``measure_started_unix_s``: its measure window's start (monotonic ns)
    on the wall clock, for the .hlog StartTime."""
    wall_minus_mono = time.time() - time.monotonic_ns() / 1e9
    for s, run in zip(steps, outcome.steps, strict=True):
        if run.t_measure:
            s["measure_started_unix_s"] = round(wall_minus_mono + run.t_measure / 1e9, 3)


def write_results(folder: Any, doc: dict, series: list, monitor: list | None = None
                  ) -> tuple[Any, str | None]:
    """run.json's path, or None and why the run folder could not be written (a full or
    read-only filesystem at the end of the run: the caller still shows the figures)."""
    try:
        return results_mod.write_run(folder, doc, series, monitor), None
    except OSError as exc:
        return None, f"results not written to {folder}: {exc.strerror or exc}"


def write_html_report(folder: Any) -> tuple[Any, str | None]:
    """report.html's path, or None and why it was not written: a chart failure must not
    lose the measured run."""
    from harness.report import html as html_report
    try:
        return html_report.write_html(folder), None
    except Exception as exc:
        return None, f"HTML report not written: {type(exc).__name__}: {exc}"


class RunsError(ValueError):
    """Run folders that cannot be read or merged (one line saying why)."""


def merge_runs(runs: tuple[str, ...]) -> tuple[dict, list, list, list]:
    """The run folders ``runs`` read and merged: (merged doc, per-second columns per step,
    per-second histograms per step, histograms per step), as harness.analysis.merge.merge_runs."""
    from harness.analysis import merge as merge_mod
    try:
        docs = [results_mod.read_run(r) for r in runs]
        series = [[results_mod.read_series(r, k) for k in range(len(d["steps"]))]
                  for r, d in zip(runs, docs, strict=True)]
    except results_mod.SchemaError as exc:
        raise RunsError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise RunsError(f"not a harness run folder: {exc}") from None
    try:
        return merge_mod.merge_runs(docs, series)
    except merge_mod.MergeError as exc:
        raise RunsError(f"merge: {exc}") from None
    except KeyError as exc:
        raise RunsError(f"not a harness run folder: a step of one of the runs lacks {exc}"
                        ) from None
