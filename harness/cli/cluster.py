"""``harness cluster scheduler`` and ``harness agent``: several client machines, one run
(Dask distributed; needs harness[cluster])."""

from __future__ import annotations

import sys

import click

from harness.cli.common import EXIT_USAGE, die
from harness.config.help import CLUSTER_EXIT_HELP, agent_flags, scheduler_flags


@click.group(epilog=CLUSTER_EXIT_HELP)
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


@click.command("agent", epilog=CLUSTER_EXIT_HELP)
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
