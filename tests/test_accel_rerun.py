"""The suite again in pure Python (``HARNESS_PURE=1``) when something compiled runs (the C
loops of harness._hot, or the mypyc build): the unit tests, and the hot path's end-to-end
files. Apart from tests/test_accel.py so that the parallel suite runs the two on different
processes (each takes tens of seconds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_accel import HOT_E2E, ROOT, _env, _need_other


def _pytest(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        *args], env=_env(True), capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    tail = r.stdout.strip().splitlines()[-3:]
    assert r.returncode == 0, "\n".join(tail) + r.stderr[-2000:]
    assert " passed" in tail[-1] and "failed" not in tail[-1]


@pytest.mark.e2e
@pytest.mark.parametrize("part", ["unit", "hot e2e"])
def test_the_suite_passes_under_the_other_build(part: str) -> None:
    """The unit tests, and the hot path's end-to-end files (but their timing tests, which
    run alone in the main run), again in pure Python, the build the main run did not use."""
    _need_other()
    if part == "unit":
        _pytest("-m", "not e2e", "tests")  # (in one process: -n 2 took 3x as long here)
    else:  # (their runs mostly wait: one file per process)
        _pytest("-n", str(len(HOT_E2E)), "--dist", "loadfile", "-m", "not alone", *HOT_E2E)
