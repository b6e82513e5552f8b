"""The command line: run, search, plans, serve, report, export, history, merge, compare,
calibrate, cluster, agent.
The only module that prints or exits.

Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO failed (or the run
was cut short); 2 usage or configuration error (one line naming the bad flag or key); 3 the
target could not be reached at all; 4 inconclusive: every threshold that could be judged
held, but no step (or search probe) could be judged (client-bound, shared core). Every
non-zero exit prints its one-line reason on stderr, --json or not.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson

from harness import __version__, accel
from harness.config.help import (
    CALIBRATE_EXIT_HELP,
    CLUSTER_EXIT_HELP,
    COMPARE_EXIT_HELP,
    EXIT_CODES_HELP,
    EXPORT_EXIT_HELP,
    HISTORY_EXIT_HELP,
    MERGE_EXIT_HELP,
    PLANS_EXIT_HELP,
    REPORT_EXIT_HELP,
    SERVE_EXIT_HELP,
    GroupedCommand,
    agent_flags,
    calibrate_flags,
    compare_flags,
    merge_flags,
    run_options,
    scheduler_flags,
    search_epilog,
    search_flags,
    serve_flags,
)
from harness.core.safe import printable
from harness.report import lines

# The worker stack (coordinator, worker, websockets, numpy, dask) is imported by the
# commands that run load, inside them: --help, a bad flag, and the commands that only read
# results start fast (tests/test_cli_imports.py keeps it so).
if TYPE_CHECKING:
    from harness.core.interrupts import Interrupts
    from harness.core.plan import Plan
    from harness.run.coordinator import RunOutcome
    from harness.run.lifecycle import Targets
    from harness.run.sweep import Session

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4
# Which code wins when two verdicts meet (a run and its comparison): a failure outranks an
# inconclusive run, which outranks a pass.
SEVERITY = (EXIT_OK, EXIT_INCONCLUSIVE, EXIT_FAIL, EXIT_UNREACHABLE, EXIT_USAGE)
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
@click.version_option(__version__, prog_name="harness",
                      message=f"%(prog)s, version %(version)s, {accel.describe()}")
def main() -> None:
    """harness: a multiprocess raw-socket stress harness.

    Latency percentiles, throughput, errors, lost messages, and the load at which a TCP
    server degrades.
    """


# ---------------------------------------------------------------------------- run


@main.command(cls=GroupedCommand, epilog=EXIT_CODES_HELP)
@run_options
def run(config_path: str | None, plan_name: str | None, as_json: bool, no_report: bool,
        push_conns: str | None, scenario: str | None, env_name: str | None, pushgateway: str | None,
        max_regression: str | None, junit_path: str | None, alert_on: str | None,
        **flags: Any) -> None:
    """Sweep connection counts (or message counts) against a server and report."""
    if pushgateway is not None:
        from harness.report.pushgateway import check_url  # it imports the worker stack
        if problem := check_url(pushgateway):
            die(EXIT_USAGE, f"--pushgateway: {problem}")
    cluster = flags.pop("cluster", None)
    live = (flags.pop("live", None), flags.pop("live_linger", None))
    config_path = config_or_plan(config_path, plan_name)
    plan, workload = plan_from_flags(config_path, push_conns, scenario, env_name, flags)
    after = AfterRun.prepare(plan, config_path, max_regression, junit_path, not no_report,
                             alert_on)
    sys.exit(execute(plan, workload, as_json, not no_report, pushgateway, after, cluster,
                     open_live(plan, *live)))


def config_or_plan(config_path: str | None, plan_name: str | None) -> str | None:
    """The config file: --config FILE, or the shipped plan --plan NAME names (not both)."""
    from harness.config import build as cfg
    if plan_name is None:
        return config_path
    if config_path is not None:
        die(EXIT_USAGE, "--plan NAME and --config FILE: give one of them")
    try:
        return cfg.plan_path(plan_name)
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))


def plan_from_flags(config_path: str | None, push_conns: str | None, scenario: str | None,
                    env_name: str | None, flags: dict[str, Any]) -> tuple[Plan, Any]:
    from harness.config import build as cfg
    if push_conns is not None:
        if flags["conns"] is not None:
            die(EXIT_USAGE, "--push-conns is an alias of --conns: give one of them")
        flags["conns"] = push_conns
    try:
        file = cfg.load_file(config_path)
        merged = cfg.settings(file, flags, scenario, env_name)
        both = flags["rate"] is not None and flags["inflight"] is not None
        plan = cfg.build_plan(merged, rate_and_inflight=both)
        workload = cfg.load_workload(plan)
        cfg.check_listen(plan, workload)
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))
    return plan, workload


def open_live(plan: Plan, address: str | None, linger: str | None) -> Any:
    """--live: the live page, serving from now (its address on stderr); None without it."""
    if address is None:
        if linger is not None:
            die(EXIT_USAGE, "--live-linger needs --live")
        return None
    from harness.report.live.server import LiveError, linger_seconds
    from harness.report.live.session import Live
    try:
        live = Live(address, linger_seconds(linger), plan.name)
    except LiveError as exc:
        die(EXIT_USAGE, str(exc))
    click.echo(f"harness: live page at {live.url}", err=True)
    return live


def execute(plan: Plan, workload: Any, as_json: bool, html: bool = True,
            pushgateway: str | None = None, after: AfterRun | None = None,
            cluster: str | None = None, live: Any = None) -> int:
    """Run the plan end to end; returns the exit code. Results are written even if cut short.

    Ctrl-C or SIGTERM before the workers start stops what was started (exit 1); once they
    run, it stops them, and the steps measured so far are reported (see harness.core.interrupts).
    """
    from harness.core.interrupts import Interrupts
    from harness.run.agent import ClusterMissing
    from harness.run.coordinator import Unreachable
    from harness.run.lifecycle import Targets
    from harness.run.scaleout import ClusterError
    outcome: RunOutcome | None = None
    watched: list = []
    warnings: list[str] = []
    started = time.time()
    check_results_dir(plan.results_dir)
    check_fd_limit(plan)
    if cluster is None:
        preflight(plan, workload)
    interrupts = Interrupts()
    pusher = None
    with interrupts.installed():
        try:
            with Targets(plan, workload) as targets:
                plan = targets.plan
                started = time.time()
                interrupts.deferring = True  # from here a signal only stops the workers
                with session_for(plan, workload, targets, interrupts, cluster,
                                 live) as session:
                    pusher = make_pusher(pushgateway, plan, workload, session)
                    outcome = session.sweep(on_step(plan, workload, session, pusher, live))
                    clear_live_line()
                    watched = [session.watched(r) for r in outcome.steps]
                    warnings = session.warnings
        except KeyboardInterrupt:
            outcome = None
        except Unreachable as exc:
            die(EXIT_UNREACHABLE, str(exc))
        except (ClusterMissing, ClusterError) as exc:
            die(EXIT_USAGE, str(exc))
        if outcome is None or (outcome.interrupted and not outcome.steps):
            die(EXIT_FAIL, "interrupted before the first step")
        for w in warnings:
            click.echo(f"harness: warning: {printable(w)}", err=True)
        code = report(plan, workload, outcome, started, as_json, html, watched, warnings,
                      pusher, after, live)
        if live is not None:
            end_live(live, lambda: interrupts.requested)
        return code


def on_step(plan: Plan, workload: Any, session: Any, pusher: Any, live: Any) -> Any:
    """What runs at each step's end: the Pushgateway's push, the live page's step."""
    inner = pusher.step_done if pusher else None
    if live is None:
        return inner
    from harness.report.live.session import watched_servers
    live.begin(plan, workload, watched_servers(getattr(session, "monitor", None)))
    return live.on_step(plan, workload, session, inner)


def end_live(live: Any, stop: Any) -> None:
    """--live-linger: the page stays up that long (a signal ends it), then stops."""
    if live.warning:
        click.echo(f"harness: warning: {printable(live.warning)}", err=True)
    if live.linger_s > 0:
        click.echo(f"harness: live page stays at {live.url} for {live.linger_s:g} s "
                   f"(Ctrl-C ends it)", err=True)
        live.linger(stop)
    live.close()


def make_pusher(url: str | None, plan: Plan, workload: Any, session: Session) -> Any:
    """A Pusher for ``--pushgateway URL`` (None without it)."""
    if url is None:
        return None
    from harness.report.pushgateway import Pusher
    return Pusher(url, plan, workload, session.watched)


def session_for(plan: Plan, workload: Any, targets: Targets, interrupts: Interrupts,
                cluster: str | None, live: Any = None) -> Any:
    """The workers of this machine (a Session), or with --cluster the agents' (see
    harness.run.scaleout); progress goes to the terminal line and the live page."""
    progress = live.progress(live_line()) if live is not None else live_line()
    if cluster is None:
        from harness.run.sweep import Session
        return Session(plan, workload, targets.addrs, targets.watch, progress,
                       targets.reserve, interrupts)
    from harness.run.scaleout import ClusterSession
    return ClusterSession(plan, workload, cluster, progress, interrupts)


def check_fd_limit(plan: Plan, most_conns: int | None = None, flag: str = "--conns") -> None:
    """Exit 2 before the run when a step needs more sockets than the open-files limit
    allows a worker (or the embedded server): refused with the figure, not measured half."""
    from harness.core.limits import raise_nofile
    from harness.run.coordinator import fd_shortfall
    if plan.until_degraded and plan.max_conns > max(s.conns for s in plan.steps):
        most_conns, flag = max(most_conns or 0, plan.max_conns), "--max-conns"
    problem = fd_shortfall(plan, raise_nofile(), most_conns)
    if problem:
        die(EXIT_USAGE, f"{flag}: {problem}")


def preflight(plan: Plan, workload: Any) -> None:
    """Source addresses that cannot be bound, then (a step over PREFLIGHT_CONNS) each
    shortfall of the machine with its fix; exit 2 when a step cannot fit. Says when harness
    picked more workers than cores for the open-files limit."""
    from harness.config.build import default_workers
    from harness.core.limits import fd_workers, nofile_hard
    from harness.run import preflight as pf
    bad = pf.unbindable(plan.source_addrs)
    if bad:
        die(EXIT_USAGE, f"--source-addrs: cannot bind {bad[0]}: {bad[1]}")
    most = pf.largest(plan)
    if plan.workers > default_workers(plan.embedded is not None) and \
            plan.workers == fd_workers(most, nofile_hard()):
        click.echo(f"harness: {plan.workers} worker processes: {most:,} connections at the "
                   f"open-files limit {nofile_hard():,} per process", err=True)
    if most <= pf.PREFLIGHT_CONNS or not plan.targets:
        return
    needs = pf.needs(plan, most, getattr(workload, "delivery", "echo") != "broadcast")
    findings = pf.check(needs, pf.read_machine())
    own, kernel = pf.memory_need(needs)
    click.echo(f"harness: preflight: {most:,} connections: memory about {own >> 20:,} MiB "
               f"harness + {kernel >> 20:,} MiB kernel sockets", err=True)
    for f in findings:
        head = "shortfall" if f.fatal else "warning"
        click.echo(f"harness: preflight {head}: {f.what}: {printable(f.text)}; fix: {f.fix}",
                   err=True)
    fatal = sum(f.fatal for f in findings)
    if fatal:
        die(EXIT_USAGE, f"preflight: a step of {most:,} connections cannot fit this machine "
                        f"({fatal} shortfall{'s' if fatal > 1 else ''} above)")


def check_results_dir(base: str) -> None:
    """Exit 2 before the run when results could not be written at its end."""
    from harness.report import results as results_mod
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
        click.echo("\r" + printable(lines.progress(step, progress, rate)), err=True, nl=False)


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


def worst(a: tuple[int, str | None], b: tuple[int, str | None]) -> tuple[int, str | None]:
    """The more severe of two (exit code, reason) verdicts (see SEVERITY)."""
    return a if SEVERITY.index(a[0]) >= SEVERITY.index(b[0]) else b


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
    from harness.analysis import aggregate
    unit = aggregate.load_unit(steps)
    whys = "; ".join(f"{aggregate.step_name(s, unit)}: {aggregate.skip_detail(s)}"
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
        from harness.analysis import compare as compare_mod
        from harness.report import compare_files as comparison
        limits = None
        if max_regression is not None and not plan.baseline:
            die(EXIT_USAGE, "--max-regression: give a baseline to compare with (--baseline, "
                            "or baseline in harness.toml)")
        if max_regression is not None:
            try:
                limits = compare_mod.parse_limits(max_regression)
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
    speaks = "" if kv else proto.name  # (its guess and what it sent: the registry's)
    ca = plan.tls is not None and bool(plan.tls.ca_pem)
    diagnosis = None if outcome.partial else aggregate.no_reply_diagnosis(
        steps, workload.framing or plan.framing, url, kv, speaks, ca)
    warning = http_answer_warning(steps, url) if url and not diagnosis else None
    if warning:
        click.echo(f"harness: warning: {printable(warning)}", err=True)
    if diagnosis:
        click.echo(f"harness: {printable(diagnosis)}", err=True)
    return diagnosis is not None


def cut_short(error: str) -> str:
    """One line for why a run was cut short (a worker's traceback: its first and last line)."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def html_warning(error: str | None) -> None:
    if error:
        click.echo(f"harness: warning: {printable(error)}", err=True)


@main.command("report", epilog=REPORT_EXIT_HELP)
@click.argument("run_folder", type=click.Path(exists=True, file_okay=True))
def report_cmd(run_folder: str) -> None:
    """Write report.html (self-contained, offline) for a run folder."""
    from harness.report import html as html_report
    from harness.report import results as results_mod
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


@main.command(cls=GroupedCommand, epilog=search_epilog())
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
    try:
        slo = capacity.parse_slo(slo_text)
        errors = capacity.parse_percent(max_errors) if max_errors is not None else None
    except capacity.SloError as exc:
        die(EXIT_USAGE, f"--slo: {exc} (grammar: harness search -h)")
    except ValueError as exc:
        die(EXIT_USAGE, f"--max-errors: {exc}")
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


# ---------------------------------------------------------------------------- plans


@main.command(epilog=PLANS_EXIT_HELP)
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


# ---------------------------------------------------------------------------- merge


@main.command(epilog=MERGE_EXIT_HELP)
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


# ---------------------------------------------------------------------------- compare


@main.command("compare", epilog=COMPARE_EXIT_HELP)
@compare_flags
def compare_cmd(base: str, new: str, max_regression: str | None, force: bool, as_json: bool,
                html_path: str | None, no_report: bool, junit_path: str | None) -> None:
    """Compare two runs step by step (matched by load): the change in every figure, each
    judged statistically from the histograms (see docs/compare-and-alerts.md)."""
    from harness.analysis import compare as compare_mod
    from harness.report import compare_files as comparison
    from harness.report import compare_table
    try:
        limits = (compare_mod.parse_limits(max_regression) if max_regression is not None
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


# ---------------------------------------------------------------------------- export


def read_run_or_die(run_folder: str) -> dict:
    """run.json of a run folder, or exit 2 with one line."""
    from harness.report import results as results_mod
    try:
        return results_mod.read_run(run_folder)
    except results_mod.SchemaError as exc:
        die(EXIT_USAGE, str(exc))
    except (OSError, ValueError) as exc:
        die(EXIT_USAGE, f"not a harness run folder: {exc}")


@main.group(epilog=EXPORT_EXIT_HELP)
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


# ---------------------------------------------------------------------------- history


@main.command(epilog=HISTORY_EXIT_HELP)
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


# ---------------------------------------------------------------------------- calibrate


@main.command(epilog=CALIBRATE_EXIT_HELP)
@calibrate_flags
def calibrate(duration: float, conns: int, inflight: int, as_json: bool) -> None:
    """Measure this machine as a load generator: one worker core's ceiling against the
    built-in echo target, and the latency floor at a low rate."""
    from harness.run.calibrate import calibrate as run_calibration
    fig = run_calibration(duration=duration, conns=conns, inflight=inflight)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(fig) + b"\n")
    if fig["busy"]:
        b = fig["busy"]
        die(EXIT_INCONCLUSIVE, f"calibrate: no ceiling: the machine is busy: other processes "
                               f"took {b['others_pct']:.0f}% of core {b['core']} ({b['role']}'s) "
                               f"during the ceiling run ({fig['measured_msgs_s']:,.0f} msgs/s "
                               "measured, not a ceiling). Run it again on an idle machine.")
    if as_json:
        sys.exit(EXIT_OK)
    for line in lines.calibration(fig):
        click.echo(line)


# ---------------------------------------------------------------------------- cluster


@main.group(epilog=CLUSTER_EXIT_HELP)
def cluster() -> None:
    """Several client machines, one run (Dask distributed; needs harness[cluster])."""


@cluster.command("scheduler", epilog=CLUSTER_EXIT_HELP)
@scheduler_flags
def cluster_scheduler(host: str, port: int) -> None:
    """Start the Dask scheduler that harness agents join and `run --cluster` uses
    (allowed-failures 0, no dashboard, listening on --host only)."""
    from harness.run.agent import serve_scheduler
    _need_cluster()

    def ready(address: str) -> None:
        click.echo(f"scheduler at {address}")
        sys.stdout.flush()

    try:
        serve_scheduler(host, port, ready)
    except OSError as exc:
        die(EXIT_USAGE, f"--host/--port: cannot listen on {host}:{port}: "
                        f"{exc.strerror or exc}")


@main.command("agent", epilog=CLUSTER_EXIT_HELP)
@agent_flags
def agent_cmd(scheduler: str, name: str | None, host: str | None) -> None:
    """Join SCHEDULER (tcp://COORD:8786) as this machine's harness agent: a Dask worker
    with one thread that runs its share of each step on its own pinned workers."""
    from harness.run.agent import is_address, serve_agent
    _need_cluster()
    if not is_address(scheduler):
        die(EXIT_USAGE, f"agent: {scheduler!r} is not a scheduler address (tcp://HOST:PORT)")

    def ready(address: str) -> None:
        click.echo(f"agent {name or ''} at {address}, joined {scheduler}".replace("  ", " "))
        sys.stdout.flush()

    try:
        serve_agent(scheduler, name, host, ready)
    except (OSError, TimeoutError, ValueError) as exc:
        die(EXIT_USAGE, f"agent: cannot join {scheduler}: {exc}")


def _need_cluster() -> None:
    from harness.run.agent import ClusterMissing, need_distributed
    try:
        need_distributed()
    except ClusterMissing as exc:
        die(EXIT_USAGE, str(exc).replace("--cluster needs", "needs"))


# ---------------------------------------------------------------------------- serve


@main.command(epilog=SERVE_EXIT_HELP)
@serve_flags
def serve(kind: str, port: str, bind: str, framing: str, nodes: int, max_frame: int,
          ws: bool) -> None:
    """Start a built-in target server until Ctrl-C or SIGTERM."""
    from harness.core.plan import Target
    from harness.targets import TargetError, run_server
    first, count = serve_ports(port, kind)
    if nodes > 1 and kind != "chat":
        die(EXIT_USAGE, "--nodes: only the chat server runs as a cluster")
    nodes = max(nodes, count)
    label = kind
    if ws:
        kind = f"ws-{kind}"

    def ready(addresses: list[tuple[str, int]]) -> None:
        for h, p in addresses:
            t = Target(h, p, "ws", "/") if ws else Target(h, p)
            click.echo(f"listening on {t.label} ({label}, {'ws, ' if ws else ''}{framing})")
        sys.stdout.flush()

    try:
        run_server(kind, bind=bind, port=first, framing=framing, nodes=nodes,
                   max_frame=max_frame, on_ready=ready)
    except (OSError, TargetError, UnicodeError) as exc:
        reason = getattr(exc.__cause__ or exc, "strerror", None) or exc
        die(EXIT_USAGE, f"--port/--bind: cannot listen on {bind}:{port}: {reason}")


def serve_ports(text: str, kind: str) -> tuple[int, int]:
    """``--port``: (first port, how many): ``P`` (0-65535), or ``FIRST-LAST`` for echo (a
    process per port)."""
    from harness.core.pools import port_pool
    text = text.strip()
    try:
        pool = port_pool(text)
    except ValueError as exc:
        die(EXIT_USAGE, f"--port: {exc}")
    if pool is not None:
        if kind != "echo":
            die(EXIT_USAGE, f"--port: a range ({text}) serves echo only; chat takes --nodes")
        return pool[0], len(pool)
    if not text.isdigit() or int(text) > 65535:
        die(EXIT_USAGE, f"--port: {text!r} is not a port 0-65535 or a range FIRST-LAST")
    return int(text), 1


if __name__ == "__main__":
    main()
