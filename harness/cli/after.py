"""What ``run`` does once its results are written: the comparison with a baseline,
JUnit XML and alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from harness.cli.common import EXIT_USAGE, die, html_warning, worst
from harness.cli.compare import compare_verdict
from harness.core.safe import printable

if TYPE_CHECKING:
    from harness.core.plan import Plan
    from harness.run.coordinator import RunOutcome


class AfterRun:
    """What ``run`` does once the results are written: compare with the baseline (read
    before the run, so a missing one is exit 2 at once), write JUnit XML, send alerts."""

    def __init__(self, baseline: Any, limits: dict | None, junit_path: str | None,
                 alert_spec: Any, html: bool) -> None:
        self.baseline, self.limits, self.junit_path = baseline, limits, junit_path
        self.alert_spec, self.html = alert_spec, html
        self.problem: str | None = None  # why the comparison could not be made

    @classmethod
    def prepare(cls, plan: Plan, config_path: str | None, max_regression: str | None,
                junit_path: str | None, html: bool, alert_on: str | None = None) -> AfterRun:
        from harness.analysis.max_regression import parse_limits
        from harness.report import compare_files as comparison
        limits = None
        if max_regression is not None and not plan.baseline:
            die(EXIT_USAGE, "--max-regression: give a baseline to compare with (--baseline, "
                            "or baseline in harness.toml)")
        if max_regression is not None:
            try:
                limits = parse_limits(max_regression)
            except ValueError as exc:
                die(EXIT_USAGE, f"--max-regression: {exc}")
        baseline = None
        if plan.baseline:
            try:
                baseline = (plan.baseline, comparison.read_run(plan.baseline, "baseline"))
            except comparison.CompareInputError as exc:
                die(EXIT_USAGE, str(exc))
        return cls(baseline, limits, junit_path, alerts_for(config_path, alert_on), html)

    def compare(self, w: Any) -> dict | None:
        from harness.report import compare_files as comparison
        if self.baseline is None or not w.path:
            return None
        folder = str(w.path.parent)
        name, (doc, series) = self.baseline
        try:
            new = comparison.read_run(folder, "new")
            pair = comparison.Pair(doc, new[0], (series, new[1]))
            cmp = comparison.compare(pair, (name, folder), self.limits, False)
        except comparison.CompareInputError as exc:
            self.problem = f"baseline {name}: {exc}"
            return None
        if self.html:
            _, error = comparison.write_page(cmp, pair, comparison.page_path(folder))
            html_warning(error)
        return cmp

    def finish(self, w: Any, outcome: RunOutcome, cmp: dict | None, code: int,
               reason: str | None) -> tuple[int, str | None]:
        from harness.report import compare_files as comparison
        from harness.report import notify as alerts
        if self.problem:
            code, reason = EXIT_USAGE, self.problem
        elif cmp:  # the table (or --json's comparison) names the figures
            code, reason = worst((code, reason), compare_verdict(cmp))
        if self.junit_path:
            html_warning(comparison.write_junit(self.junit_path, w.doc, cmp))
        cut = bool(outcome.error or outcome.interrupted or outcome.partial)
        folder = str(w.path.parent) if w.path else None
        sent, problems = alerts.send(self.alert_spec, w.doc, cut, cmp, folder)
        for line in problems:
            click.echo(f"harness: warning: {printable(line)}", err=True)
        if sent:
            click.echo(f"harness: alert sent: {', '.join(sent)}", err=True)
        return code, reason


def alerts_for(config_path: str | None, alert_on: str | None) -> Any:
    """The [alerts] of ./harness.toml or --config (the later file's whole), with --alert-on
    applied; exit 2 when --alert-on has no [alerts] to send to."""
    from harness.config import alerts as alert_spec
    from harness.config import build as cfg
    try:
        file = cfg.load_file(config_path)
        spec = alert_spec.parse(file.get("alerts"), cfg.origin_of(file, "alerts"))
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))
    if alert_on is None:
        return spec
    if spec is None:
        die(EXIT_USAGE, "--alert-on: no [alerts] in ./harness.toml or --config to send to")
    return alert_spec.sent_when(spec, alert_on)
