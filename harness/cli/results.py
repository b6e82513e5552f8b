"""The commands that read a results folder: report, export, history, and plans (the
plans shipped with harness)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from harness.cli.common import EXIT_USAGE, die
from harness.config.help import (
    EXPORT_EXIT_HELP,
    HISTORY_EXIT_HELP,
    PLANS_EXIT_HELP,
    REPORT_EXIT_HELP,
)
from harness.core.safe import printable


def read_run_or_die(run_folder: str) -> dict:
    """run.json of a run folder, or exit 2 with one line."""
    from harness.report import results as results_mod
    try:
        return results_mod.read_run(run_folder)
    except results_mod.SchemaError as exc:
        die(EXIT_USAGE, str(exc))
    except (OSError, ValueError) as exc:
        die(EXIT_USAGE, f"not a harness run folder: {exc}")


@click.command("report", epilog=REPORT_EXIT_HELP)
@click.argument("run_folder", type=click.Path(exists=True, file_okay=True))
def report_cmd(run_folder: str) -> None:
    """Write report.html (self-contained, offline) for a run folder."""
    from harness.report import html as html_report
    read_run_or_die(run_folder)
    try:
        page = html_report.write_html(run_folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # a run.json edited by hand, or from another tool: a field of the wrong type
        die(EXIT_USAGE, f"{run_folder}: not a harness run folder ({type(exc).__name__}: {exc})")
    click.echo(str(page))


@click.group(epilog=EXPORT_EXIT_HELP)
def export() -> None:
    """Write a run folder's figures for other tools (.hlog, Prometheus text)."""


@export.command("hlog", epilog=EXPORT_EXIT_HELP)
@click.argument("run_folder", type=click.Path(exists=True, file_okay=True))
def export_hlog(run_folder: str) -> None:
    """Write latency-step<k>.hlog (HdrHistogram interval logs) into the run folder."""
    from pathlib import Path

    from harness.report import exports
    doc = read_run_or_die(run_folder)
    folder = Path(run_folder)
    folder = folder.parent if folder.is_file() else folder
    try:
        paths = exports.hlog_files(folder, doc)
    except ImportError as exc:
        die(EXIT_USAGE, f"the hdrhistogram package is needed (pip install hdrhistogram): {exc}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        die(EXIT_USAGE, f"{run_folder}: cannot write .hlog files ({type(exc).__name__}: {exc})")
    for path in paths:
        click.echo(str(path))


@export.command("openmetrics", epilog=EXPORT_EXIT_HELP)
@click.argument("run_folder", type=click.Path(exists=True, file_okay=True))
@click.option("--format", "fmt", type=click.Choice(["prometheus", "openmetrics"]),
              default="prometheus", show_default=True,
              help="Prometheus text 0.0.4, or OpenMetrics 1.0 (ends in # EOF)")
def export_openmetrics(run_folder: str, fmt: str) -> None:
    """Print the run's figures as Prometheus/OpenMetrics text (histogram buckets on
    harness's own edges, so counts stay exact)."""
    from pathlib import Path

    from harness.report import openmetrics
    doc = read_run_or_die(run_folder)
    folder = Path(run_folder)
    name = (folder.parent if folder.is_file() else folder).resolve().name
    try:
        text = openmetrics.run_text(doc, name, fmt == "openmetrics")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        die(EXIT_USAGE, f"{run_folder}: not a harness run folder ({type(exc).__name__}: {exc})")
    click.echo(text, nl=False)


@click.command(epilog=HISTORY_EXIT_HELP)
@click.argument("results_dir", default="results", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the runs as JSON, newest first")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="also write an HTML page charting p99 and throughput per "
                                   "scenario over time")
def history(results_dir: str, as_json: bool, html_path: str | None) -> None:
    """List the runs of a results folder, newest first, with their key figures."""
    from pathlib import Path

    from tabulate import tabulate

    from harness.report import history as history_mod
    from harness.report import results as results_mod
    try:
        rows, skipped = history_mod.list_runs(results_dir)
    except OSError as exc:
        die(EXIT_USAGE, f"{results_dir}: cannot list runs: {exc.strerror or exc}")
    if html_path:  # before the warnings: exit 2 is its one line
        try:
            results_mod.write_atomic(Path(html_path), history_mod.render_html(rows).encode())
        except OSError as exc:
            die(EXIT_USAGE, f"--html: cannot write {html_path}: {exc.strerror or exc}")
    for line in skipped:
        click.echo(f"harness: warning: {printable(line)}", err=True)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps([r.to_json() for r in rows]) + b"\n")
    else:
        click.echo(tabulate([r.cells() for r in rows], headers=history_mod.COLUMNS)
                   if rows else f"no runs in {results_dir}")


@click.command(epilog=PLANS_EXIT_HELP)
@click.argument("name", required=False)
def plans(name: str | None) -> None:
    """List the plans shipped with harness (run one with: harness run --plan NAME), or
    print plan NAME (to copy and edit: harness plans NAME > mine.toml, then --config
    mine.toml)."""
    from harness.config import build as cfg
    if name is not None:
        try:
            path = cfg.plan_path(name)
        except cfg.ConfigError as exc:
            die(EXIT_USAGE, str(exc).replace("--plan: ", "plans: "))
        click.echo(Path(path).read_text(encoding="utf-8"), nl=False)
        return
    shipped = cfg.shipped_plans()
    width = max((len(n) for n in shipped), default=0)
    for plan_name, (_, title) in shipped.items():
        click.echo(f"{plan_name:<{width}}  {title}")
