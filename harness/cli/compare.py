"""``harness compare``: two runs step by step, and a comparison's exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from harness.cli.common import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_USAGE, die, html_warning
from harness.config.help import COMPARE_EXIT_HELP, compare_flags
from harness.core.safe import printable


@click.command("compare", epilog=COMPARE_EXIT_HELP)
@compare_flags
def compare_cmd(base: str, new: str, max_regression: str | None, force: bool, as_json: bool,
                html_path: str | None, no_report: bool, junit_path: str | None) -> None:
    """Compare two runs step by step (matched by load): the change in every figure, each
    judged statistically from the histograms (see docs/compare-and-alerts.md)."""
    from harness.analysis.max_regression import parse_limits
    from harness.report import compare_files as comparison
    from harness.report import compare_table
    try:
        limits = (parse_limits(max_regression) if max_regression is not None
                  else None)
    except ValueError as exc:
        die(EXIT_USAGE, f"--max-regression: {exc}")
    try:
        pair = comparison.read_pair(base, new)
        cmp = comparison.compare(pair, (base, new), limits, force)
    except comparison.CompareInputError as exc:
        die(EXIT_USAGE, str(exc))
    page = None
    if not no_report:
        page, error = comparison.write_page(
            cmp, pair, comparison.page_path(new) if html_path is None else Path(html_path))
        html_warning(error)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(cmp, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    else:
        click.echo(compare_table.render(cmp))
        if page:
            click.echo(f"comparison page: {page}")
    if junit_path:
        html_warning(comparison.write_junit(junit_path, None, cmp))
    code, reason = compare_verdict(cmp)
    if reason:
        click.echo(f"harness: {printable(reason)}", err=True)
    sys.exit(code)


def compare_verdict(cmp: dict) -> tuple[int, str | None]:
    """A comparison's exit code and one-line reason: a regression fails (1); no matched step
    judged is inconclusive (4), naming how many changes would have failed."""
    if cmp["regressed"]:
        more = f" (and {len(cmp['regressions']) - 1} more)" if len(cmp["regressions"]) > 1 else ""
        return EXIT_FAIL, f"regression: {cmp['regressions'][0]}{more}"
    if not cmp["judged"]:
        would = cmp.get("would_fail") or []
        return EXIT_INCONCLUSIVE, ("inconclusive comparison: no step could be judged (client-"
                                   "bound, shared core or cut short)" + (
                                       f"; {len(would)} change(s) beyond the limits had they "
                                       f"been judged, e.g. {would[0]}" if would else ""))
    return EXIT_OK, None
