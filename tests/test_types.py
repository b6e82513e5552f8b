"""Static checks: ``python -m mypy`` with the ``[tool.mypy]`` settings of pyproject.toml
(packages harness and workloads) finds no error, and ruff (max-complexity 10) is clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e  # a subprocess, and slow (mypy checks every module)


def test_mypy_finds_no_error_in_harness_or_workloads() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert done.returncode == 0 and "Success: no issues found" in done.stdout, (
        done.stdout[-4000:] + done.stderr[-2000:])


def test_ruff_finds_nothing_at_max_complexity_10() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "harness", "workloads", "tests"],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
