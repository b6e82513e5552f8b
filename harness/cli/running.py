"""``harness run``: the plan from the config file and flags, the run end to end (this
machine's workers or a cluster's), progress on the terminal and the live page."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from harness.cli.after import AfterRun
from harness.cli.checks import check_fd_limit, check_results_dir, preflight
from harness.cli.common import (
    EXIT_FAIL,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    clear_live_line,
    die,
    live_line,
)
from harness.cli.verdicts import report
from harness.config.help import EXIT_CODES_HELP, GroupedCommand, run_options
from harness.core.safe import printable

if TYPE_CHECKING:
    from harness.core.interrupts import Interrupts
    from harness.core.plan import Plan
    from harness.run.coordinator import RunOutcome
    from harness.run.lifecycle import Targets
    from harness.run.sweep import Session


@click.command(cls=GroupedCommand, epilog=EXIT_CODES_HELP)
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
    check_results_dir(plan.results_dir)
    check_fd_limit(plan)
    if cluster is None:
        preflight(plan, workload)
    interrupts = Interrupts()
    with interrupts.installed():
        m, outcome = measure(plan, workload, interrupts, cluster, live, pushgateway)
        for w in m.warnings:
            click.echo(f"harness: warning: {printable(w)}", err=True)
        code = report(m.plan, workload, outcome, m.started, as_json, html, m.watched,
                      m.warnings, m.pusher, after, live)
        if live is not None:
            end_live(live, lambda: interrupts.requested)
        return code


@dataclass
class Measured:
    """What a sweep leaves for its report besides the outcome: the plan as the targets
    resolved it, when the sweep started (s since the epoch), what each step watched, the
    session's warnings and the Pushgateway's pusher (None without --pushgateway)."""

    plan: Plan
    started: float = field(default_factory=time.time)
    watched: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pusher: Any = None


def measure(plan: Plan, workload: Any, interrupts: Interrupts, cluster: str | None,
            live: Any, pushgateway: str | None) -> tuple[Measured, RunOutcome]:
    """The sweep, inside the targets' lifetime. Exits 3 when the target cannot be reached,
    2 when the cluster cannot be used, 1 when interrupted before the first step."""
    from harness.run.agent import ClusterMissing
    from harness.run.coordinator import Unreachable
    from harness.run.lifecycle import Targets
    from harness.run.scaleout_agents import ClusterError
    m, outcome = Measured(plan), None
    try:
        with Targets(plan, workload) as targets:
            m.plan, m.started = targets.plan, time.time()
            interrupts.deferring = True  # from here a signal only stops the workers
            with session_for(m.plan, workload, targets, interrupts, cluster, live) as session:
                m.pusher = make_pusher(pushgateway, m.plan, workload, session)
                outcome = session.sweep(on_step(m.plan, workload, session, m.pusher, live))
                clear_live_line()
                m.watched = [session.watched(r) for r in outcome.steps]
                m.warnings = session.warnings
    except KeyboardInterrupt:
        outcome = None
    except Unreachable as exc:
        die(EXIT_UNREACHABLE, str(exc))
    except (ClusterMissing, ClusterError) as exc:
        die(EXIT_USAGE, str(exc))
    if outcome is None or (outcome.interrupted and not outcome.steps):
        die(EXIT_FAIL, "interrupted before the first step")
    return m, outcome


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
