"""The command line: run, search, plans, serve, report, export, history, merge, compare,
calibrate, cluster, agent. This package alone prints or exits. Here: the group and its
entry point (``harness.cli:main``); each command lives in a module of its own (running,
searching, results, merge, compare, machine, cluster), sharing harness.cli.common.

Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO failed (or the run
was cut short); 2 usage or configuration error (one line naming the bad flag or key); 3 the
target could not be reached at all; 4 inconclusive: every threshold that could be judged
held, but no step (or search probe) could be judged (client-bound, shared core). Every
non-zero exit prints its one-line reason on stderr, --json or not.

The worker stack (coordinator, worker, websockets, numpy, dask) is imported by the commands
that run load, inside them: --help, a bad flag, and the commands that only read results
start fast (tests/test_cli_imports.py keeps it so).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from harness import __version__, accel
from harness.cli import cluster, compare, machine, merge, results
from harness.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, die
from harness.cli.running import run
from harness.cli.searching import search
from harness.config.help import EXIT_CODES_HELP

__all__ = ["main", "run", "search"]
CONTEXT = {"help_option_names": ["-h", "--help"]}
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


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


for _command in (run, search, results.plans, results.report_cmd, results.export,
                 results.history, merge.merge, compare.compare_cmd, machine.serve,
                 machine.calibrate, cluster.cluster, cluster.agent_cmd):
    main.add_command(_command)


if __name__ == "__main__":
    main()
