"""What the command line imports before it has load to run: ``--help``, a usage error and
the commands that only read results start without the worker stack (coordinator, worker,
websockets, numpy, Dask), which the commands that run load import when they run. Each case
runs in a fresh interpreter and reads ``sys.modules`` after it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a Python subprocess per case

# Never needed to parse flags, print help or name a usage error.
WORKER_STACK = ("harness.worker.worker",
                "harness.run.coordinator",
                "harness.run.sweep",
                "harness.run.agent",
                "harness.run.scaleout",
                "harness.targets", "websockets", "distributed", "dask")
# Needed only once results are computed or shown.
RESULTS_STACK = ("numpy", "tabulate", "psutil",
                 "harness.analysis.aggregate",
                 "harness.report.folder")
MARK = "--- modules ---"


def modules_after(*argv: str, cwd: Path) -> tuple[set[str], str]:
    """The modules loaded once ``harness ARGV`` has returned or exited (argv empty: once
    ``harness.cli`` is imported), and what it printed before them."""
    code = ("import sys\n"
            "from harness.cli import main\n"
            f"argv = {list(argv)!r}\n"
            "try:\n"
            "    if argv:\n"
            "        main(argv, prog_name='harness')\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print({MARK!r})\n"
            "print('\\n'.join(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr
    shown, _, listed = proc.stdout.partition(MARK + "\n")
    return set(listed.split()), shown + proc.stderr


def heavy(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    """The ``names`` (packages and their submodules) among ``loaded``."""
    return sorted(m for m in loaded if m in names or any(m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("argv", [(), ("--help",), ("run", "--help"), ("search", "--help"),
                                  ("run", "--no-such-flag"), ("--version",)])
def test_help_and_usage_errors_import_neither_the_worker_nor_numpy(
        argv: tuple[str, ...], tmp_path: Path) -> None:
    loaded, shown = modules_after(*argv, cwd=tmp_path)
    assert "harness.cli" in loaded
    assert heavy(loaded, WORKER_STACK + RESULTS_STACK) == [], shown


def test_a_bad_flag_value_is_named_without_the_worker_stack(tmp_path: Path) -> None:
    loaded, shown = modules_after("run", "--conns", "x", cwd=tmp_path)
    assert "--conns" in shown and "harness.config.build" in loaded
    assert heavy(loaded, WORKER_STACK) == [], shown


def test_a_bad_config_key_is_named_without_numpy(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text("[run]\nno_such_key = 1\n")
    loaded, shown = modules_after("run", cwd=tmp_path)
    assert "run.no_such_key" in shown
    assert heavy(loaded, WORKER_STACK + RESULTS_STACK) == [], shown


@pytest.mark.parametrize("argv", [("history", "."), ("compare", "a", "b"), ("merge", "a", "a"),
                                  ("report", "a"), ("export", "openmetrics", "a")])
def test_reading_results_needs_no_worker_stack(argv: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()  # a folder that is not a run
    loaded, shown = modules_after(*argv, cwd=tmp_path)
    assert "no runs in" in shown or "harness: " in shown, shown
    assert heavy(loaded, WORKER_STACK) == [], shown


def test_the_check_sees_a_heavy_module() -> None:
    assert heavy({"numpy.linalg", "harness.worker.worker", "harness.workloads_x", "click"},
                 ("numpy", "harness.worker.worker")) == ["harness.worker.worker", "numpy.linalg"]
