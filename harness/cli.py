"""The command line: run, search, serve, report, calibrate. The only module that prints or
exits.

Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO failed (or the run
was cut short); 2 usage or configuration error (one line naming the bad flag or key); 3 the
target could not be reached at all.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from typing import Any, NoReturn

import click
import orjson

from harness import __version__, aggregate
from harness import config as cfg
from harness import sweep as sweep_mod
from harness.coordinator import RunOutcome, Unreachable, fd_shortfall
from harness.interrupts import Interrupts
from harness.limits import raise_nofile
from harness.plan import Plan, Target
from harness.report import document, table
from harness.report import results as results_mod
from harness.report.safe import printable
from harness.sweep import Session
from harness.targets.lifecycle import Targets

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_CODES_HELP = """Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO
failed, or the run was cut short (results written, marked partial); 2 usage or configuration
error; 3 the target could not be reached at all (refused, unresolvable, or never answered)."""
SEARCH_EXIT_HELP = """Exit codes: 0 a load met the SLO; 1 no probed load met it, or the search
was cut short; 2 usage or configuration error; 3 the target could not be reached at all."""
MERGE_EXIT_HELP = """Exit codes: 0 merged and every threshold held; 1 merged and a threshold
failed; 2 usage error, or runs that cannot be merged."""
REPORT_EXIT_HELP = "Exit codes: 0 report written; 2 not a harness run folder."
CALIBRATE_EXIT_HELP = "Exit codes: 0 measured; 1 interrupted."
SERVE_EXIT_HELP = """Exit codes: 0 stopped by Ctrl-C or SIGTERM; 2 usage error, or the address
cannot be listened on."""
CONTEXT = {"help_option_names": ["-h", "--help"]}
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def die(code: int, message: str) -> NoReturn:
    click.echo(f"harness: {printable(message)}", err=True)
    sys.exit(code)


class HarnessGroup(click.Group):
    """The command group. Its ``main`` shows every usage error as one line (exit 2): the
    flag and what is wrong with it, then where the help is, never click's usage block."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except NO_ARGS_IS_HELP as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "harness"
            die(EXIT_USAGE, f"{' '.join(exc.format_message().split())} (see '{where} -h')")
        except click.ClickException as exc:
            die(exc.exit_code, " ".join(exc.format_message().split()))
        except click.Abort:
            die(EXIT_FAIL, "interrupted")
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


@click.group(cls=HarnessGroup, epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="harness")
def main() -> None:
    """harness: a multiprocess raw-socket stress harness.

    Latency percentiles, throughput, errors, lost messages, and the load at which a TCP
    server degrades.
    """


# ---------------------------------------------------------------------------- run

# Option groups of `run --help`, in the order shown.
GROUPS = ("Search", "Target", "Load", "Pacing", "Step", "Measurement", "Output", "Capacity",
          "Config", "Other")
FRAMINGS = ("newline", "len16", "len32")
# (flag, type, group, help, applies to search). Each flag's default is its harness.toml key.
RUN_FLAGS: list[tuple[str, Any, str, str, bool]] = [
    ("--host", str, "Target", "target host:port, [v6]:port, or a comma list of nodes; none = "
     "start the embedded server", True),
    ("--server-cmd", str, "Target", "a command that starts a local server: watched, stopped "
     "afterwards", True),
    ("--workload", str, "Target", "echo, chat, or path/to/workload.py", True),
    ("--framing", click.Choice(FRAMINGS), "Target", "message framing (len16/len32: big-endian "
     "length prefix)", True),
    ("--max-frame", int, "Target", "largest frame accepted from the server, bytes (16 to 2^30)",
     True),
    ("--source-addrs", str, "Target", "local IPv4 addresses to spread connections over, e.g. "
     "127.0.0.1-127.0.0.8 (automatic past 25,000 to one loopback target)", True),
    ("--conns", str, "Load", "connection counts to sweep, e.g. 10,100,1000 (1 to 1,000,000)",
     True),
    ("--messages", str, "Load", "messages per step in total (a list sweeps); ends each step "
     "instead of --duration", False),
    ("--workers", int, "Load", "worker processes (0 = usable cores, less one for an embedded "
     "server)", True),
    ("--size", str, "Load", "bytes per message on the wire, framing included: N, LO-HI or "
     "N,N,...", True),
    ("--corpus", str, "Load", "payloads from a file, one per line, after the stamp", True),
    ("--listen", int, "Load", "listen-only connections per node (broadcast workloads)", True),
    ("--push-hosts", str, "Load", "node indices the sending connections go to, e.g. 0,1", True),
    ("--seed", int, "Load", "seed for schedules and payloads", True),
    ("--inflight", int, "Pacing", "closed loop: messages outstanding per connection", True),
    ("--rate", float, "Pacing", "open loop: messages/s per connection on a fixed schedule "
     "(0.001 to 1e6; 0 = closed loop)", True),
    ("--think", float, "Pacing", "closed loop: seconds to wait after each reply (to 3600)",
     True),
    ("--connect-rate", float, "Pacing", "new connections per second (0 = as fast as possible)",
     True),
    ("--duration", float, "Step", "seconds of the measure window per step", True),
    ("--warmup", float, "Step", "seconds of warm-up before each measure window", True),
    ("--timeout", float, "Step", "reply timeout, seconds (0.001 to 3600)", True),
    ("--connect-timeout", float, "Step", "connect timeout, seconds (0.001 to 3600)", True),
    ("--server-pid", int, "Measurement", "a server process to watch (CPU, memory, threads, "
     "fds; 0 = none)", True),
    ("--monitor-interval", float, "Measurement", "seconds between resource samples (0.05 to "
     "60)", True),
    ("--name", str, "Output", "run name, used in the results folder", False),
    ("--results-dir", str, "Output", "where results/<UTC time>-<name>/ goes", False),
    ("--grow", click.Choice(("double", "add")), "Capacity", "--until-degraded: double the "
     "connections each step, or add --increment", False),
    ("--increment", int, "Capacity", "--until-degraded with --grow add: connections added per "
     "step", False),
    ("--max-conns", int, "Capacity", "--until-degraded: the most connections to try", False),
]


class GroupedOption(click.Option):
    """An option that knows its help group and, for run flags, its harness.toml key."""

    def __init__(self, *args: Any, group: str = "Other", key: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group
        self.key = key


class GroupedCommand(click.Command):
    """``--help`` lists options under headings (GROUPS), each run flag with its default as
    resolved from the built-in defaults and ./harness.toml."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        defaults = resolved_defaults()
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            key = getattr(param, "key", None)
            if key is not None and key in defaults:
                record = (record[0], f"{record[1]}  [default: {defaults[key]}]")
            groups.setdefault(getattr(param, "group", "Other"), []).append(record)
        for title in GROUPS:
            if title in groups:
                with formatter.section(f"{title} options"):
                    formatter.write_dl(groups[title])


def resolved_defaults() -> dict[str, str]:
    """Each [run] key's default as text: the built-ins, with ./harness.toml over them (the
    built-ins alone when that file has an error: running will name it)."""
    try:
        run = cfg.settings(cfg.load_file(None), {})["run"]
    except cfg.ConfigError:
        run = cfg.settings({}, {})["run"]
    shown = {}
    for key, value in run.items():
        if isinstance(value, list):
            value = ",".join(map(str, value)) or "none"
        elif isinstance(value, bool):
            value = "on" if value else "off"
        shown[key] = printable(str(value)) if value != "" else "none"
    return shown


def option(*decls: str, group: str, key: str | None = None, **kwargs: Any) -> Any:
    return click.option(*decls, cls=GroupedOption, group=group, key=key, **kwargs)


def _extra_options() -> dict[str, Any]:
    """The run options that are not harness.toml keys (or are flags), by name."""
    return {
        "--config": option("--config", "config_path", type=click.Path(), default=None,
                           group="Config", help="config file layered over the built-in "
                           "defaults (default ./harness.toml)"),
        "--push-conns": option("--push-conns", type=str, default=None, group="Load",
                               help="alias of --conns for fan-out runs"),
        "--json": option("--json", "as_json", is_flag=True, group="Output",
                         help="print the run summary as JSON on stdout instead of the table"),
        "--no-report": option("--no-report", is_flag=True, group="Output",
                              help="skip the HTML report"),
        "--env": option("--env", "env_name", default=None, group="Measurement",
                        help="apply [env.NAME] threshold/degradation overrides"),
        "--scenario": option("--scenario", default=None, group="Capacity",
                             help="a [scenarios.NAME] preset (built-in: smoke, baseline, load, "
                                  "stress, ramp, spike, soak) or one from harness.toml"),
        "--until-degraded": option("--until-degraded", is_flag=True, default=None,
                                   group="Capacity", key="until_degraded",
                                   help="keep adding steps until the degradation rule fires"),
    }


SEARCH_EXTRAS = ("--config", "--push-conns")


def run_options(f: Any, search: bool = False) -> Any:
    """The flags of ``run`` (``search``: only those that apply to a search's probes)."""
    decorators = [d for name, d in _extra_options().items()
                  if not search or name in SEARCH_EXTRAS]
    decorators += [option(flag, type=typ, default=None, group=group,
                          key=flag[2:].replace("-", "_"), help=help_)
                   for flag, typ, group, help_, in_search in RUN_FLAGS
                   if in_search or not search]
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def search_options(f: Any) -> Any:
    return run_options(f, search=True)


@main.command(cls=GroupedCommand, epilog=EXIT_CODES_HELP)
@run_options
def run(config_path: str | None, as_json: bool, no_report: bool, push_conns: str | None,
        scenario: str | None, env_name: str | None, **flags: Any) -> None:
    """Sweep connection counts (or message counts) against a server and report."""
    plan, workload = plan_from_flags(config_path, push_conns, scenario, env_name, flags)
    sys.exit(execute(plan, workload, as_json, not no_report))


def plan_from_flags(config_path: str | None, push_conns: str | None, scenario: str | None,
                    env_name: str | None, flags: dict[str, Any]) -> tuple[Plan, Any]:
    if push_conns is not None:
        if flags["conns"] is not None:
            die(EXIT_USAGE, "--push-conns is an alias of --conns: give one of them")
        flags["conns"] = push_conns
    try:
        file = cfg.load_file(config_path)
        merged = cfg.settings(file, flags, scenario, env_name)
        both = flags["rate"] is not None and flags["inflight"] is not None
        plan = cfg.build_plan(merged, rate_and_inflight=both)
        workload = load_workload(plan)
        check_listen(plan, workload)
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))
    return plan, workload


def check_listen(plan: Plan, workload: Any) -> None:
    """Listen-only connections only make sense where messages are broadcast to them."""
    if workload.delivery != "broadcast" and any(s.listen for s in plan.steps):
        raise cfg.ConfigError(f"--listen: listen-only connections need a broadcast workload "
                              f"(e.g. chat); {workload.name} replies only to the sender")


def load_workload(plan: Plan) -> Any:
    from workloads import WorkloadError, load
    try:
        cls = load(plan.workload)
        return cls(plan.size_spec if plan.size_spec is not None else plan.size, plan.seed)
    except WorkloadError as exc:
        raise cfg.ConfigError(str(exc)) from None
    except Exception as exc:  # a user's workload whose constructor fails
        raise cfg.ConfigError(f"workload {plan.workload}: {type(exc).__name__}: {exc}") from None


def execute(plan: Plan, workload: Any, as_json: bool, html: bool = True) -> int:
    """Run the plan end to end; returns the exit code. Results are written even if cut short.

    Ctrl-C or SIGTERM before the workers start stops what was started (exit 1); once they
    run, it stops them, and the steps measured so far are reported (see harness.interrupts).
    """
    outcome: RunOutcome | None = None
    watched: list = []
    warnings: list[str] = []
    started = time.time()
    check_results_dir(plan.results_dir)
    check_fd_limit(plan)
    interrupts = Interrupts()
    with interrupts.installed():
        try:
            with Targets(plan, workload) as targets:
                plan = targets.plan
                started = time.time()
                interrupts.deferring = True  # from here a signal only stops the workers
                with Session(plan, workload, targets.addrs, targets.watch, live_line(),
                             targets.reserve, interrupts) as session:
                    outcome = session.sweep()
                    clear_live_line()
                    watched = [session.watched(r) for r in outcome.steps]
                    warnings = session.warnings
        except KeyboardInterrupt:
            outcome = None
        except Unreachable as exc:
            die(EXIT_UNREACHABLE, str(exc))
        if outcome is None or (outcome.interrupted and not outcome.steps):
            die(EXIT_FAIL, "interrupted before the first step")
        for w in warnings:
            click.echo(f"harness: warning: {printable(w)}", err=True)
        return report(plan, workload, outcome, started, as_json, html, watched, warnings)


def check_fd_limit(plan: Plan, most_conns: int | None = None, flag: str = "--conns") -> None:
    """Exit 2 before the run when a step needs more sockets than the open-files limit
    allows a worker (or the embedded server): refused with the figure, not measured half."""
    if plan.until_degraded and plan.max_conns > max(s.conns for s in plan.steps):
        most_conns, flag = max(most_conns or 0, plan.max_conns), "--max-conns"
    problem = fd_shortfall(plan, raise_nofile(), most_conns)
    if problem:
        die(EXIT_USAGE, f"{flag}: {problem}")


def check_results_dir(base: str) -> None:
    """Exit 2 before the run when results could not be written at its end."""
    try:
        results_mod.check_writable(base)
    except OSError as exc:
        die(EXIT_USAGE, f"--results-dir: cannot write results in {base}: "
                        f"{exc.strerror or exc}")


def live_line() -> LiveLine | None:
    return LiveLine() if sys.stderr.isatty() else None


def clear_live_line() -> None:
    if sys.stderr.isatty():
        click.echo("\r" + " " * 100 + "\r", err=True, nl=False)


class LiveLine:
    """Once a second on stderr: step, connections open, replies/s over the last second, the
    p99 so far in this step (of the worst worker; "n/a" until a reply came), errors."""

    def __init__(self) -> None:
        self.last: tuple[float, int] | None = None
        self.step = -1

    def __call__(self, step: Any, progress: list[dict]) -> None:
        now = time.monotonic()
        received = sum(p["received"] for p in progress)
        rate = 0.0
        if step.index != self.step:
            self.step, self.last = step.index, None
        if self.last is not None and now > self.last[0]:
            rate = (received - self.last[1]) / (now - self.last[0])
        self.last = (now, received)
        p99s = [p["p99"] for p in progress if p["p99"] is not None]
        p99 = f"{max(p99s) / 1e6:.3f} ms" if p99s else "n/a"
        text = (f"step {step.index + 1} conns={step.conns} open="
                f"{sum(p['open'] for p in progress)} msgs/s={rate:,.0f} "
                f"p99 so far (worst worker)={p99} "
                f"errors={sum(p['errors'] for p in progress)}   ")
        click.echo("\r" + printable(text), err=True, nl=False)



def report(plan: Plan, workload: Any, outcome: RunOutcome, started: float, as_json: bool,
           html: bool = True, watched: list | None = None, warnings: list[str] | None = None
           ) -> int:
    watched = watched or [None] * len(outcome.steps)
    figures = [sweep_mod.figures(plan, workload, r, w, trend=True)
               for r, w in zip(outcome.steps, watched, strict=True)]
    steps = [f.summary.to_json() for f in figures]
    verdict = aggregate.degradation(steps, plan.degradation)
    failures = aggregate.threshold_failures(steps, plan.thresholds)
    doc = document.run_document(plan, workload, outcome.partial, steps, verdict, failures,
                                started, sys.argv[1:])
    doc["warnings"] = warnings or []
    folder = results_mod.run_dir(plan.results_dir, plan.name, started)
    full = document.with_histograms(doc, [f.histograms for f in figures],
                                    [f.second_hists for f in figures])
    monitor_rows = [w.rows if w is not None else [] for w in watched]
    path, unwritten = write_results(folder, full, [f.series for f in figures], monitor_rows)
    page = write_html_report(folder) if html and path else None
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    else:
        click.echo(table.render(doc))
        for line in failures:
            click.echo(f"THRESHOLD FAILED: {printable(line)}")
        if path:
            click.echo(f"results: {path}" + (f"  report: {page}" if page else ""))
    if unwritten:
        click.echo(f"harness: {printable(unwritten)}", err=True)
    if outcome.error:
        click.echo(f"harness: run cut short: {printable(cut_short(outcome.error))} "
                   f"(what the others measured is kept, marked partial)", err=True)
    if outcome.interrupted:
        click.echo("harness: interrupted; partial results written", err=True)
    diagnosis = None if outcome.partial else aggregate.no_reply_diagnosis(
        steps, workload.framing or plan.framing)
    if diagnosis:
        click.echo(f"harness: {printable(diagnosis)}", err=True)
        return EXIT_UNREACHABLE
    unjudged = bool(steps) and verdict["judged"] == 0
    failed = failures or outcome.error or outcome.partial or not steps or unwritten or unjudged
    return EXIT_FAIL if failed else EXIT_OK


def write_results(folder: Any, doc: dict, series: list, monitor: list | None = None
                  ) -> tuple[Any, str | None]:
    """run.json's path, or None and why the run folder could not be written (a full or
    read-only filesystem at the end of the run: the caller still shows the figures)."""
    try:
        return results_mod.write_run(folder, doc, series, monitor), None
    except OSError as exc:
        return None, f"results not written to {folder}: {exc.strerror or exc}"


def cut_short(error: str) -> str:
    """One line for why a run was cut short (a worker's traceback: its first and last line)."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def write_html_report(folder: Any) -> Any:
    from harness.report import html as html_report
    try:
        return html_report.write_html(folder)
    except Exception as exc:  # a chart failure must not lose the measured run
        click.echo(f"harness: warning: HTML report not written: {type(exc).__name__}: "
                   f"{printable(str(exc))}",
                   err=True)
        return None


@main.command("report", epilog=REPORT_EXIT_HELP)
@click.argument("run_folder", type=click.Path(exists=True, file_okay=True))
def report_cmd(run_folder: str) -> None:
    """Write report.html (self-contained, offline) for a run folder."""
    from harness.report import html as html_report
    try:
        results_mod.read_run(run_folder)
    except results_mod.SchemaError as exc:
        die(EXIT_USAGE, str(exc))
    except (OSError, ValueError) as exc:
        die(EXIT_USAGE, f"not a harness run folder: {exc}")
    try:
        page = html_report.write_html(run_folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # a run.json edited by hand, or from another tool: a field of the wrong type
        die(EXIT_USAGE, f"{run_folder}: not a harness run folder ({type(exc).__name__}: {exc})")
    click.echo(str(page))


# ---------------------------------------------------------------------------- search


def search_epilog() -> str:
    from harness.capacity import GRAMMAR
    return "\b\n" + GRAMMAR + "\n\n" + SEARCH_EXIT_HELP


@main.command(cls=GroupedCommand, epilog=search_epilog())
@option("--slo", "slo_text", required=True, group="Search",
        help="the SLO a probe must meet, e.g. 'p99<5ms' or 'p99<5ms and errors<0.1%' "
             "(grammar below)")
@option("--max-errors", default=None, group="Search",
        help="largest error rate, e.g. 0.1% (default: not checked)")
@option("--over", type=click.Choice(["rate", "conns"]), default="rate", show_default=True,
        group="Search", help="search the total message rate (open loop) or the connection count")
@option("--lo", type=float, default=None, group="Search",
        help="first load to probe (default: 100 msgs/s with --over rate, 1 connection "
             "with --over conns); if it fails, the search halves it, down to lo/64")
@option("--hi", type=float, default=None, group="Search",
        help="highest load to probe (default: 100,000 msgs/s with --over rate, 1,000 "
             "connections with --over conns)")
@option("--tolerance", type=click.FloatRange(0.001, 1.0), default=0.05, show_default=True,
        group="Search",
        help="stop when the bracket is narrower than this fraction of the load found")
@option("--max-probes", type=click.IntRange(2, 100), default=12, show_default=True,
        group="Search", help="the most probes to run")
@option("--json", "as_json", is_flag=True, group="Output",
        help="print the search result as JSON: max_load, unit, slo, probes, ...")
@search_options
def search(config_path: str | None, as_json: bool, push_conns: str | None, slo_text: str,
           max_errors: str | None, over: str, lo: float | None, hi: float | None,
           tolerance: float, max_probes: int, **flags: Any) -> None:
    """Find, by bisection, the highest load that meets an SLO.

    --over rate: the total msgs/s over --conns connections (one value), open loop.
    --over conns: the connection count, at --rate per connection (or closed loop).
    Each probe is one step of --duration seconds.
    """
    from harness import capacity
    try:
        slo = capacity.parse_slo(slo_text)
        errors = capacity.parse_percent(max_errors) if max_errors is not None else None
    except capacity.SloError as exc:
        die(EXIT_USAGE, f"--slo: {exc} (grammar: harness search -h)")
    except ValueError as exc:
        die(EXIT_USAGE, f"--max-errors: {exc}")
    plan, workload = plan_from_flags(config_path, push_conns, None, None, flags)
    base = plan.steps[0]
    lo, hi = search_bounds(over, lo, hi, base.conns)
    plan = search_plan(plan, over, lo)

    def bisect(probe_at: Any) -> dict:
        return capacity.search(probe_at, lo, hi, slo, errors, tolerance, max_probes,
                               integer=over == "conns")

    if over == "conns":
        check_fd_limit(plan, int(min(hi, 1e9)), "--hi")
    else:
        check_fd_limit(plan)
    result, summaries = run_probes(plan, workload, over, bisect)
    doc = document.search_document(result, summaries, over, slo_text, errors, tolerance,
                                   base.conns)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
    else:
        print_search(result, lo, slo_text, tolerance, "msgs/s" if over == "rate" else "conns")
    sys.exit(EXIT_OK if result["max_load"] is not None else EXIT_FAIL)


def search_bounds(over: str, lo: float | None, hi: float | None, conns: int
                  ) -> tuple[float, float]:
    """--lo and --hi (defaults: 100 to 100,000 msgs/s, or 1 to 1000 conns), finite, in
    order, and within what a probe can run: --rate's range per connection, or MAX_CONNS."""
    lo = lo if lo is not None else (100.0 if over == "rate" else 1.0)
    hi = hi if hi is not None else (100_000.0 if over == "rate" else 1000.0)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        die(EXIT_USAGE, f"--lo/--hi: need finite 0 < lo < hi, got {lo:g} and {hi:g}")
    rate = cfg.RUN_SPEC["rate"]
    if over == "conns" and hi > cfg.MAX_CONNS:
        die(EXIT_USAGE, f"--hi: at most {cfg.MAX_CONNS:,} connections")
    if over == "rate" and not (rate.zero_or or 0) <= lo / conns <= hi / conns <= rate.hi:
        die(EXIT_USAGE, f"--lo/--hi: over {conns} connections the rate per connection must "
                        f"stay within {rate.zero_or:g} to {rate.hi:g} msgs/s")
    return lo, hi


def run_probes(plan: Plan, workload: Any, over: str, bisect: Any) -> tuple[dict, list[dict]]:
    """``bisect(probe_at)`` with the target and the workers up, each probe one step; returns
    its result and each probe's figures. A signal or a lost worker ends the search (exit 1)."""
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
                with Session(plan, workload, targets.addrs, targets.watch, live_line(),
                             targets.reserve, interrupts) as session:

                    def probe_at(load: float) -> dict:
                        tried.append(load)
                        step = (replace(base, rate=load / base.conns) if over == "rate"
                                else replace(base, conns=int(load)))
                        out = session.probe(step)
                        clear_live_line()
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
        except Unreachable as exc:
            die(EXIT_UNREACHABLE, str(exc))
        except KeyboardInterrupt:
            if cut:
                die(EXIT_FAIL, f"search stopped: {cut_short(cut[0])}")
            die(EXIT_FAIL, "interrupted during the search" if tried
                else "interrupted before the first step")


def load_text(x: float | None) -> str:
    """A load as a person reads it: whole numbers as they are, others to 3 significant
    digits; thousands separated."""
    if x is None:
        return "-"
    if float(x).is_integer():
        return f"{x:,.0f}"
    short = float(f"{x:.3g}")
    return f"{short:,.0f}" if abs(short) >= 100 else f"{short:g}"


def print_search(result: dict, lo: float, slo_text: str, tolerance: float, unit: str) -> None:
    for p in result["probes"]:
        p99 = "-" if p["p99_ms"] is None else f"{p['p99_ms']:.3f}"
        click.echo(f"probe {load_text(p['load']):>9} {unit}: {'ok ' if p['ok'] else 'FAIL'} "
                   f"p99 {p99} ms, {p['throughput_msgs_s']:,.0f} msgs/s  "
                   f"{'; '.join(p['violations'])}")
    if result["searched_down"]:
        click.echo(f"the first probe ({load_text(lo)} {unit}) failed: searched down, halving "
                   f"the load, to at most the floor of {load_text(result['floor'])} {unit}")
    if result["max_load"] is None:
        low = result["bracket"][1]
        click.echo(f"no load from {load_text(low)} to {load_text(lo)} {unit} meets {slo_text}")
    else:
        click.echo(f"max load meeting {slo_text}: {load_text(result['max_load'])} {unit} "
                   f"(tolerance {tolerance:.0%}"
                   f"{', not converged' if not result['converged'] else ''})")


def search_plan(plan: Plan, over: str, load: float) -> Plan:
    """--over rate probes total msgs/s on a fixed schedule: the open loop, whatever --rate
    said (``load`` spread over the first step's connections). --over conns: ``plan``."""
    if over != "rate":
        return plan
    rate = load / plan.steps[0].conns
    return replace(plan, pacing=replace(plan.pacing, mode="open", rate=rate))


# ---------------------------------------------------------------------------- merge


@main.command(epilog=MERGE_EXIT_HELP)
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--name", default="merged", show_default=True)
@click.option("--results-dir", default="results", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-report", is_flag=True)
def merge(runs: tuple[str, ...], name: str, results_dir: str, as_json: bool,
          no_report: bool) -> None:
    """Merge runs that several client machines made at once against one target.

    Histograms add bucket by bucket; percentiles are taken once, after the merge.
    """
    from harness import merge as merge_mod
    try:
        docs = [results_mod.read_run(r) for r in runs]
        series = [[results_mod.read_series(r, k) for k in range(len(d["steps"]))]
                  for r, d in zip(runs, docs, strict=True)]
    except results_mod.SchemaError as exc:
        die(EXIT_USAGE, str(exc))
    except (OSError, ValueError) as exc:
        die(EXIT_USAGE, f"not a harness run folder: {exc}")
    try:
        doc, cols, seconds, hists = merge_mod.merge_runs(docs, series)
    except merge_mod.MergeError as exc:
        die(EXIT_USAGE, f"merge: {exc}")
    except KeyError as exc:
        die(EXIT_USAGE, f"not a harness run folder: a step of one of the runs lacks {exc}")
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
    path, unwritten = write_results(folder, full, cols)
    page = None if no_report or not path else write_html_report(folder)
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
    sys.exit(EXIT_FAIL if failures or unwritten else EXIT_OK)


# ---------------------------------------------------------------------------- calibrate


@main.command(epilog=CALIBRATE_EXIT_HELP)
@click.option("--duration", type=click.FloatRange(0.5, 600), default=5.0, show_default=True)
@click.option("--conns", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--inflight", type=click.IntRange(1, 10000), default=16, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def calibrate(duration: float, conns: int, inflight: int, as_json: bool) -> None:
    """Measure this machine as a load generator: one worker core's ceiling against the
    built-in echo target, and the latency floor at a low rate."""
    from harness.calibrate import calibrate as run_calibration
    fig = run_calibration(duration=duration, conns=conns, inflight=inflight)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(fig) + b"\n")
        sys.exit(EXIT_FAIL if fig["busy"] else EXIT_OK)
    if fig["busy"]:
        b = fig["busy"]
        die(EXIT_FAIL, f"calibrate: no ceiling: the machine is busy: other processes took "
                       f"{b['others_pct']:.0f}% of core {b['core']} ({b['role']}'s) during the "
                       f"ceiling run ({fig['measured_msgs_s']:,.0f} msgs/s measured, not a "
                       "ceiling). Run it again on an idle machine.")
    st = fig["setup"]
    click.echo(f"ceiling: {fig['ceiling_msgs_s']:,.0f} echoed msgs/s from one worker core "
               f"({fig['ceiling_mb_s']:.1f} MB/s; {st['conns']} conns x {st['inflight']} in "
               f"flight, {st['size']} B {st['framing']}; latency recorded for every message)")
    click.echo(f"  client CPU {fig['client_cpu_pct']:.0f}%, echo server CPU "
               f"{fig['server_cpu_pct']:.0f}%" + ("  (the SERVER set this ceiling)"
                                                   if fig["server_bound"] else ""))
    click.echo(f"latency floor: p50 {fig['floor_p50_ms']:.3f} ms, p99 {fig['floor_p99_ms']:.3f} "
               f"ms at {fig['floor_rate_msgs_s']:,.0f} msgs/s ({st['floor_conns']} conns x "
               f"{st['floor_rate_per_conn']:.0f}/s, open loop)")


# ---------------------------------------------------------------------------- serve


@main.command(epilog=SERVE_EXIT_HELP)
@click.argument("kind", type=click.Choice(["echo", "chat"]))
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="port to listen on (0 = any free port, printed when listening)")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0 or :: for every interface)")
@click.option("--framing", type=click.Choice(FRAMINGS), default="len32", show_default=True,
              help="message framing the server reads and writes")
@click.option("--nodes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="chat: linked nodes on consecutive ports")
@click.option("--max-frame", type=click.IntRange(16, 1 << 30), default=1 << 20,
              show_default=True, help="largest frame accepted from a client, bytes")
def serve(kind: str, port: int, bind: str, framing: str, nodes: int, max_frame: int) -> None:
    """Start a built-in target server until Ctrl-C or SIGTERM."""
    from harness.targets import TargetError, run_server
    if nodes > 1 and kind != "chat":
        die(EXIT_USAGE, "--nodes: only the chat server runs as a cluster")

    def ready(addresses: list[tuple[str, int]]) -> None:
        for h, p in addresses:
            click.echo(f"listening on {Target(h, p).label} ({kind}, {framing})")
        sys.stdout.flush()

    try:
        run_server(kind, bind=bind, port=port, framing=framing, nodes=nodes,
                   max_frame=max_frame, on_ready=ready)
    except (OSError, TargetError, UnicodeError) as exc:
        reason = getattr(exc.__cause__ or exc, "strerror", None) or exc
        die(EXIT_USAGE, f"--port/--bind: cannot listen on {bind}:{port}: {reason}")


if __name__ == "__main__":
    main()
