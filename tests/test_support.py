"""tests.support.cli: ``harness()`` in the test process gives what ``python -m harness`` as
a subprocess gives (exit status, stdout, stderr), and puts the process back as it found it
(working folder, environment, argv, standard streams and fds, signal handlers, threads)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from tests.support import harness, harness_process

CASES = [
    ("--help",),
    ("run", "-h"),
    ("run", "--json", "--conns", "ten"),
    ("run", "--bogus"),
    ("run", "--config", "missing.toml"),
    ("report", "no-such-folder"),
    ("plans",),
    ("--version",),
]


@pytest.mark.e2e
@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_in_process_and_subprocess_give_the_same_status_and_output(tmp_path: Path,
                                                                   args: tuple[str, ...]
                                                                   ) -> None:
    inside = harness(*args, cwd=tmp_path)
    outside = harness_process(*args, cwd=tmp_path)
    assert (inside.returncode, inside.stdout, inside.stderr) == (
        outside.returncode, outside.stdout, outside.stderr)


def test_an_in_process_call_leaves_the_process_as_it_found_it(tmp_path: Path) -> None:
    state = (os.getcwd(), dict(os.environ), list(sys.argv), sys.stdin, sys.stdout,
             sys.stderr, signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGALRM),
             os.fstat(1).st_ino, os.fstat(2).st_ino, set(threading.enumerate()))
    r = harness("run", "--conns", "ten", cwd=tmp_path, env={"HARNESS_TEST_VAR": "1"})
    assert r.returncode == 2
    assert state == (os.getcwd(), dict(os.environ), list(sys.argv), sys.stdin, sys.stdout,
                     sys.stderr, signal.getsignal(signal.SIGINT),
                     signal.getsignal(signal.SIGALRM), os.fstat(1).st_ino, os.fstat(2).st_ino,
                     set(threading.enumerate()))


def test_env_replaces_the_environment_and_bytes_come_back_undecoded(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text("[run]\nbogus = 1\n")
    r = harness("run", cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")}, text=False)
    assert r.returncode == 2 and isinstance(r.stderr, bytes)
    assert b"bogus" in r.stderr and r.stderr.count(b"\n") == 1
