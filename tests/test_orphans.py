"""A coordinator killed outright (SIGKILL) takes its workers with it: they ignore SIGTERM and
wait on pipes, so without PR_SET_PDEATHSIG they lived on (issue 20, item 4)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

WORKERS = 2


def descendants(pid: int, want: int, within_s: float) -> list[psutil.Process]:
    """The processes under ``pid`` once there are ``want`` of them (bounded wait)."""
    parent = psutil.Process(pid)
    deadline = time.monotonic() + within_s
    kids: list[psutil.Process] = []
    while time.monotonic() < deadline:
        kids = parent.children(recursive=True)
        if len(kids) >= want:
            return kids
        time.sleep(0.05)
    return kids


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.e2e
def test_workers_die_within_seconds_of_a_killed_coordinator(tmp_path: Path) -> None:
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--conns", "4", "--duration", "20",
         "--warmup", "0", "--workers", str(WORKERS), "--no-report", "--results-dir",
         "results"], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    kids: list[psutil.Process] = []
    try:
        kids = descendants(coordinator.pid, WORKERS + 1, 15)  # the workers and the server
        assert len(kids) >= WORKERS + 1, kids
        time.sleep(0.5)  # the workers are in their step
        coordinator.kill()
        coordinator.wait(timeout=5)
        _, still = psutil.wait_procs(kids, timeout=5)
        assert not alive(still), [p.pid for p in alive(still)]
    finally:
        for p in kids:  # only what this test started (psutil checks the pid is the same)
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            coordinator.kill()
        coordinator.wait(timeout=5)
