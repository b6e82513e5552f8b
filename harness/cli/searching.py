"""``harness search``: the highest load that meets an SLO, by bisection over probes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson

from harness.cli.checks import check_fd_limit
from harness.cli.common import (
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    clear_live_line,
    cut_short,
    die,
    live_line,
)
from harness.cli.running import config_or_plan, plan_from_flags
from harness.config.help import GroupedCommand, search_epilog, search_flags
from harness.core.safe import printable
from harness.report import lines

if TYPE_CHECKING:
    from harness.analysis.slo import Slo


@click.command(cls=GroupedCommand, epilog=search_epilog())
@search_flags
def search(config_path: str | None, plan_name: str | None, as_json: bool,
           push_conns: str | None, slo_text: str, max_errors: str | None, over: str,
           lo: float | None, hi: float | None, tolerance: float, max_probes: int,
           **flags: Any) -> None:
    """Find, by bisection, the highest load that meets an SLO.

    --over rate: the total msgs/s over --conns connections (one value), open loop.
    --over conns: the connection count, at --rate per connection (or closed loop).
    Each probe is one step of --duration seconds.
    """
    from harness.analysis import capacity
    from harness.config import build as cfg
    from harness.report import document
    from harness.run.coordinator import Unreachable
    from harness.run.probes import SearchStopped, run_probes, search_plan
    slo, errors = parse_slo(slo_text, max_errors)
    config_path = config_or_plan(config_path, plan_name)
    plan, workload = plan_from_flags(config_path, push_conns, None, None, flags)
    base = plan.steps[0]
    try:
        lo, hi = cfg.search_bounds(over, lo, hi, base.conns)
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))
    plan = search_plan(plan, over, lo)

    def bisect(probe_at: Any) -> dict:
        return capacity.search(probe_at, lo, hi, slo, errors, tolerance, max_probes,
                               integer=over == "conns")

    if over == "conns":
        check_fd_limit(plan, int(min(hi, 1e9)), "--hi")
    else:
        check_fd_limit(plan)
    try:
        result, summaries = run_probes(plan, workload, over, bisect, live_line(),
                                       clear_live_line)
    except Unreachable as exc:
        die(EXIT_UNREACHABLE, str(exc))
    except SearchStopped as exc:
        if exc.error:
            die(EXIT_FAIL, f"search stopped: {cut_short(exc.error)}")
        die(EXIT_FAIL, "interrupted during the search" if exc.started
            else "interrupted before the first step")
    doc = document.search_document(result, summaries, over, slo_text, errors, tolerance,
                                   base.conns)
    show_search(doc, result, as_json, lo, slo_text, tolerance, over)


def parse_slo(slo_text: str, max_errors: str | None) -> tuple[Slo, float | None]:
    """--slo and --max-errors, parsed (exit 2 naming the flag that is wrong)."""
    from harness.analysis.slo import SloError, parse_percent
    from harness.analysis.slo import parse_slo as parse
    try:
        slo = parse(slo_text)
        errors = parse_percent(max_errors) if max_errors is not None else None
    except SloError as exc:
        die(EXIT_USAGE, f"--slo: {exc} (grammar: harness search -h)")
    except ValueError as exc:
        die(EXIT_USAGE, f"--max-errors: {exc}")
    return slo, errors


def show_search(doc: dict, result: dict, as_json: bool, lo: float, slo_text: str,
                tolerance: float, over: str) -> NoReturn:
    """The search's JSON or lines, then its exit (with the reason on stderr)."""
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
    else:
        print_search(result, lo, slo_text, tolerance, "msgs/s" if over == "rate" else "conns")
    code, reason = search_verdict(result, lo, slo_text, over)
    if reason:
        click.echo(f"harness: {printable(reason)}", err=True)
    sys.exit(code)


def search_verdict(result: dict, lo: float, slo_text: str, over: str) -> tuple[int, str | None]:
    """0 a judged load met the SLO; 4 inconclusive (a busy machine, or only loads the client
    could not drive); 1 no load probed met it."""
    if result.get("inconclusive"):
        return EXIT_INCONCLUSIVE, f"inconclusive: {result['inconclusive']}"
    if result["max_load"] is None:
        unit = "msgs/s" if over == "rate" else "conns"
        return EXIT_FAIL, (f"no load from {lines.load_text(result['bracket'][1])} to "
                           f"{lines.load_text(lo)} {unit} meets {slo_text}")
    return EXIT_OK, None


def print_search(result: dict, lo: float, slo_text: str, tolerance: float, unit: str) -> None:
    for line in lines.search(result, lo, slo_text, tolerance, unit):
        click.echo(line)
