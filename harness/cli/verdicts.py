"""After a run: its results written, the summary shown, and the exit code with its
one-line reason (a diagnosis when no valid reply came, a threshold failed, inconclusive)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import orjson

from harness.cli.common import (
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    cut_short,
    html_warning,
)
from harness.core.safe import printable

if TYPE_CHECKING:
    from harness.cli.after import AfterRun
    from harness.core.plan import Plan
    from harness.run.coordinator import RunOutcome


def report(plan: Plan, workload: Any, outcome: RunOutcome, started: float, as_json: bool,
           html: bool = True, watched: list | None = None, warnings: list[str] | None = None,
           pusher: Any = None, after: AfterRun | None = None, live: Any = None) -> int:
    from harness.report import folder as outputs
    w = outputs.write_run(plan, workload, outcome, started, html, watched, warnings)
    html_warning(w.html_error)
    for problem in w.export_problems:
        html_warning(problem)
    if pusher is not None:
        pusher.run_done(w.full)
        html_warning(pusher.warning)
    cmp = after.compare(w) if after else None
    show_summary(w, as_json, cmp)
    if w.unwritten:
        click.echo(f"harness: {printable(w.unwritten)}", err=True)
    if outcome.error:
        click.echo(f"harness: run cut short: {printable(cut_short(outcome.error))} "
                   f"(what the others measured is kept, marked partial)", err=True)
    if outcome.interrupted:
        click.echo("harness: interrupted; partial results written", err=True)
    reason: str | None
    if diagnosed(plan, workload, outcome, w.steps):
        code, reason = EXIT_UNREACHABLE, "no valid reply"
    else:
        code, reason = run_verdict(w, outcome)
        if after:
            code, reason = after.finish(w, outcome, cmp, code, reason)
        if reason:
            click.echo(f"harness: {printable(reason)}", err=True)
    if live is not None:
        live.done(w.verdict, code, reason)
    return code


def run_verdict(w: Any, outcome: RunOutcome) -> tuple[int, str | None]:
    """The run's exit code, and its one-line reason when that was not yet said on stderr
    (a cut-short run, an unwritten results folder have said theirs)."""
    if outcome.error or outcome.interrupted or w.unwritten:
        return EXIT_FAIL, None
    if outcome.partial:
        return EXIT_FAIL, "run cut short: partial results written"
    if not w.steps:
        return EXIT_FAIL, "no step ran"
    if w.failures:
        more = f" (and {len(w.failures) - 1} more)" if len(w.failures) > 1 else ""
        return EXIT_FAIL, f"threshold failed: {w.failures[0]}{more}"
    if w.verdict["judged"] == 0:
        return EXIT_INCONCLUSIVE, inconclusive_line(w.steps)
    return EXIT_OK, None


def inconclusive_line(steps: list[dict]) -> str:
    """Why no step could be judged, with each step's rule and figure."""
    from harness.analysis import bottleneck, judge
    unit = judge.load_unit(steps)
    whys = "; ".join(f"{judge.step_name(s, unit)}: {bottleneck.skip_detail(s)}"
                     for s in steps)
    return ("inconclusive: no step could be judged (harness or another process on its cores "
            f"was the bottleneck): {whys}")


def show_summary(w: Any, as_json: bool, cmp: dict | None) -> None:
    """The run summary (with the comparison, when a baseline was given): JSON, or the table,
    the threshold failures and where the results are."""
    from harness.report import compare_table, table
    if as_json:
        shown = dict(w.doc, comparison=cmp) if cmp else w.doc
        sys.stdout.buffer.write(orjson.dumps(shown, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        return
    click.echo(table.render(w.doc))
    if cmp:
        click.echo("\ncompared with the baseline:\n" + compare_table.render(cmp))
    for line in w.failures:
        click.echo(f"THRESHOLD FAILED: {printable(line)}")
    if w.path:
        click.echo(f"results: {w.path}" + (f"  report: {w.page}" if w.page else ""))


def diagnosed(plan: Plan, workload: Any, outcome: RunOutcome, steps: list) -> bool:
    """Print why no valid reply came (True: exit 3), or warn of HTTP answers to a raw run."""
    from harness.analysis import aggregate
    from harness.analysis.diagnosis import http_answer_warning, http_url
    from harness.protocols import KV, of_run
    protocol = getattr(workload, "protocol", "framed")
    scheme = plan.targets[0].scheme if plan.targets else "tcp"
    url = http_url([(t.host, t.port) for t in plan.targets]) \
        if protocol == "framed" and scheme == "tcp" else None
    proto = of_run(protocol, scheme)
    kv = proto.name if proto.name in KV else None
    speaks = "" if kv or proto.name == "tcp" else proto.name  # (its own guess, its kinds)
    ca = plan.tls is not None and bool(plan.tls.ca_pem)
    diagnosis = None if outcome.partial else aggregate.no_reply_diagnosis(
        steps, workload.framing or plan.framing, url, kv, speaks, ca)
    warning = http_answer_warning(steps, url) if url and not diagnosis else None
    if warning:
        click.echo(f"harness: warning: {printable(warning)}", err=True)
    if diagnosis:
        click.echo(f"harness: {printable(diagnosis)}", err=True)
    return diagnosis is not None
