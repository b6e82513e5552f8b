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



@pytest.mark.e2e
def test_plans_run_at_once_give_each_plans_summaries_in_order_and_a_failure_raises() -> None:
    from tests import servers
    from tests.support import plan_for, run_plans_at_once
    with servers.start("echo") as srv:
        plans = [plan_for(f"127.0.0.1:{srv.port}", messages=n, conns="2", warmup=0.0)
                 for n in ("40", "60,80")]
        got = run_plans_at_once(plans)
        assert [[s["sent"] for s in steps] for steps in got] == [[40], [60, 80]]
        assert all(s["lost"] == 0 for steps in got for s in steps)
        unresolvable = plan_for("no-such-host.invalid:7", messages="10", warmup=0.0)
        with pytest.raises(AssertionError, match="a forked run failed"):
            run_plans_at_once([plans[0], unresolvable])


@pytest.mark.e2e
def test_harness_processes_at_once_give_each_its_result_and_pin_where_asked(
        tmp_path: Path) -> None:
    import orjson

    from tests import servers
    from tests.support import harness_processes_at_once
    with servers.start("echo") as srv:
        run = ["run", "--host", f"127.0.0.1:{srv.port}", "--messages", "20", "--conns", "1",
               "--warmup", "0", "--json", "--no-report", "--results-dir", "r"]
        bad = ("run", "--conns", "ten")
        got = harness_processes_at_once({"pinned": (run, tmp_path), "bad": (bad, tmp_path)},
                                        timeout=60, cpus={"pinned": {0}})
    assert got["bad"].returncode == 2 and got["bad"].stderr.count("\n") == 1
    assert got["pinned"].returncode in (0, 4), got["pinned"].stderr  # 4: a busy machine
    assert orjson.loads(got["pinned"].stdout.splitlines()[-1])["steps"][0]["received"] == 20
    (folder,) = (tmp_path / "r").iterdir()
    assert orjson.loads((folder / "run.json").read_bytes())["environment"]["usable_cores"] == 1
