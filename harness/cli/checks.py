"""What the CLI checks before a run starts, each refusal one line and exit 2: a
results folder that could not be written, more sockets than the open-files limit, a
machine that cannot fit the largest step (preflight)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from harness.cli.common import EXIT_USAGE, die
from harness.core.safe import printable

if TYPE_CHECKING:
    from harness.core.plan import Plan


def check_results_dir(base: str) -> None:
    """Exit 2 before the run when results could not be written at its end."""
    from harness.report import results as results_mod
    try:
        results_mod.check_writable(base)
    except OSError as exc:
        die(EXIT_USAGE, f"--results-dir: cannot write results in {base}: "
                        f"{exc.strerror or exc}")


def check_fd_limit(plan: Plan, most_conns: int | None = None, flag: str = "--conns") -> None:
    """Exit 2 before the run when a step needs more sockets than the open-files limit
    allows a worker (or the embedded server): refused with the figure, not measured half."""
    from harness.core.limits import raise_nofile
    from harness.run.shares import fd_shortfall
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
