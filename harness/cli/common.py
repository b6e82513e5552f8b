"""What every command shares: the exit codes, ``die`` (one line on stderr, then the
exit), warnings, and the live progress line on stderr."""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import click

from harness.core.safe import printable
from harness.report import lines

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4
# Which code wins when two verdicts meet (a run and its comparison): a failure outranks an
# inconclusive run, which outranks a pass.
SEVERITY = (EXIT_OK, EXIT_INCONCLUSIVE, EXIT_FAIL, EXIT_UNREACHABLE, EXIT_USAGE)


def die(code: int, message: str) -> NoReturn:
    click.echo(f"harness: {printable(message)}", err=True)
    sys.exit(code)


def worst(a: tuple[int, str | None], b: tuple[int, str | None]) -> tuple[int, str | None]:
    """The more severe of two (exit code, reason) verdicts (see SEVERITY)."""
    return a if SEVERITY.index(a[0]) >= SEVERITY.index(b[0]) else b


def cut_short(error: str) -> str:
    """One line for why a run was cut short (a worker's traceback: its first and last line)."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def html_warning(error: str | None) -> None:
    if error:
        click.echo(f"harness: warning: {printable(error)}", err=True)


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
