"""``harness merge``: runs that several client machines made at once, as one run."""

from __future__ import annotations

import sys

import click
import orjson

from harness.cli.checks import check_results_dir
from harness.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, die, html_warning
from harness.config.help import MERGE_EXIT_HELP, merge_flags
from harness.core.safe import printable


@click.command(epilog=MERGE_EXIT_HELP)
@merge_flags
def merge(runs: tuple[str, ...], name: str, results_dir: str, as_json: bool,
          no_report: bool) -> None:
    """Merge runs that several client machines made at once against one target.

    Histograms add bucket by bucket; percentiles are taken once, after the merge.
    """
    from harness.config import build as cfg
    from harness.report import document, exports, table
    from harness.report import folder as outputs
    from harness.report import results as results_mod
    try:
        doc, cols, seconds, hists = outputs.merge_runs(runs)
    except outputs.RunsError as exc:
        die(EXIT_USAGE, str(exc))
    try:
        folder = results_mod.run_dir(results_dir, cfg._safe_name(name))
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))
    check_results_dir(results_dir)
    doc["merged_from"] = list(runs)
    doc["argv"] = sys.argv[1:]
    for w in doc["warnings"]:
        click.echo(f"harness: warning: {printable(w)}", err=True)
    full = document.with_histograms(doc, hists, seconds)
    path, unwritten = outputs.write_results(folder, full, cols)
    page, html_error = ((None, None) if no_report or not path
                        else outputs.write_html_report(folder))
    html_warning(html_error)
    for problem in exports.write_exports(folder, full) if path else []:
        html_warning(problem)
    failures = doc["thresholds"]["failed"]
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
    else:
        click.echo(table.render(doc))
        for line in failures:
            click.echo(f"THRESHOLD FAILED: {line}")
        if path:
            click.echo(f"merged {len(runs)} runs: {path}" +
                       (f"  report: {page}" if page else ""))
    if unwritten:
        click.echo(f"harness: {unwritten}", err=True)
    elif failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        click.echo(f"harness: threshold failed: {printable(failures[0])}{more}", err=True)
    sys.exit(EXIT_FAIL if failures or unwritten else EXIT_OK)
