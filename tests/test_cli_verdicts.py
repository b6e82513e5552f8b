"""Verdicts a capacity planner reads, end to end through the CLI against real servers on
loopback: a target that never answers validly (exit 3 and one diagnosis line), protocol
errors that fail the run, a busy core that calibrate refuses, the command line recorded, the
live line and the search summary as printed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from harness.cli import common, searching
from harness.config import build as cfg
from harness.core.plan import Step
from harness.run.probes import search_plan
from harness.targets import launch
from tests.support import free_port, harness, stop, wait_listening

RUN = ["--duration", "1", "--warmup", "0.3", "--timeout", "0.5", "--workers", "1",
       "--no-report"]


@contextlib.contextmanager
def server_process(cmd: list[str], port: int) -> Iterator[int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        wait_listening(proc, port)
        yield port
    finally:
        stop(proc)


# ---------------------------------------------------------------------------- no valid reply


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("redis-server") is None,
                    reason="redis-server not installed (tests/setup.sh installs it)")
def test_a_redis_server_is_never_healthy_and_the_run_exits_3_with_a_diagnosis(
        tmp_path: Path) -> None:
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", str(tmp_path)]
    with server_process(cmd, port):
        r = harness("run", "--host", f"127.0.0.1:{port}", "--conns", "2,4", "--framing",
                    "newline", *RUN, "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "no valid reply" in x]
    assert line.startswith("harness: no valid reply in the whole run: sent ")
    assert "stamped newline messages on 4 connections; got back " in line
    assert 'first bytes received: "-ERR unknown command' in line
    assert line.endswith("the target answered in RESP (the Redis protocol): it is not an "
                         "echo server")
    assert "; no healthy step" in r.stdout and "last healthy step" not in r.stdout
    assert "rule no_replies" in r.stdout


@pytest.mark.e2e
def test_an_http_server_is_diagnosed_as_http(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
           "--directory", str(tmp_path)]
    with server_process(cmd, port):
        r = harness("run", "--host", f"127.0.0.1:{port}", "--conns", "2", "--framing",
                    "newline", *RUN, "--warmup", "0", "--results-dir", str(tmp_path),
                    cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert 'first bytes received: "' in r.stderr  # the status line, or an HTTP/0.9 page
    assert r.stderr.rstrip().endswith(
        f"the target answered with HTTP: use --host http://127.0.0.1:{port}/")
    assert "None conns" not in r.stdout and "no healthy step" in r.stdout


@pytest.mark.e2e
def test_a_chat_server_with_the_wrong_framing_hangs_up_and_says_so(tmp_path: Path) -> None:
    # newline frames to a len32 server: their first four ASCII bytes read as a huge length
    with launch("chat", framing="len32") as srv:
        host, port = srv.addresses[0]
        r = harness("run", "--host", f"{host}:{port}", "--conns", "3", "--framing",
                    "newline", *RUN, "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip() == (
        "harness: no valid reply in the whole run: sent 3 stamped newline messages on 3 "
        "connections; got back 3 connections closed by it; no bytes came back; the target "
        "hung up without a reply: does it expect newline frames (--framing)?")


# ---------------------------------------------------------------------------- protocol errors


@pytest.mark.e2e
def test_protocol_errors_fail_the_run_and_the_degradation_rule(tmp_path: Path) -> None:
    # the echo workload against a chat room: every reply arrives, but so do the others'
    with launch("chat", framing="newline") as srv:
        host, port = srv.addresses[0]
        r = harness("run", "--host", f"{host}:{port}", "--conns", "4", "--framing",
                    "newline", *RUN, "--json", "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    doc = orjson.loads(r.stdout)
    s = doc["steps"][0]
    assert s["errors"]["protocol"] > 0 and s["received"] > 0
    if doc["degradation"]["judged"]:  # (a step on a busy machine's shared core is not)
        assert doc["degradation"]["rule"] == "error_rate"
    assert any(f.startswith("error_rate: ") for f in doc["thresholds"]["failed"])


# ---------------------------------------------------------------------------- the record


@pytest.mark.e2e
def test_the_command_line_is_in_run_json_and_heads_the_table(tmp_path: Path) -> None:
    with launch("echo") as srv:
        host, port = srv.addresses[0]
        args = ["run", "--host", f"{host}:{port}", "--conns", "2", *RUN, "--results-dir",
                str(tmp_path / "res"), "--name", "argv test"]
        r = harness(*args, cwd=tmp_path)
    assert r.returncode in (0, 1, 4), r.stderr
    assert r.stdout.splitlines()[0] == ("command: harness run --host " f"{host}:{port}"
                                        " --conns 2 " + " ".join(RUN) + " --results-dir "
                                        f"{tmp_path / 'res'} --name 'argv test'")
    (run_json,) = (tmp_path / "res").glob("*/run.json")
    assert orjson.loads(run_json.read_bytes())["argv"] == args


def test_the_live_line_says_what_its_p99_is(capsys: pytest.CaptureFixture) -> None:
    live = common.LiveLine()
    step = Step(index=0, conns=5, duration_s=1.0, messages=None)
    live(step, [{"received": 0, "p99": None, "open": 5, "errors": 0}])
    assert "p99 so far (worst worker)=n/a" in capsys.readouterr().err
    live(step, [{"received": 10, "p99": 1_234_000, "open": 5, "errors": 0},
                {"received": 10, "p99": 2_500_000, "open": 5, "errors": 0}])
    err = capsys.readouterr().err
    assert "p99 so far (worst worker)=2.500 ms" in err and "p99<=" not in err


def test_the_search_summary_is_rounded_and_says_it_went_down(
        capsys: pytest.CaptureFixture) -> None:
    probe = {"ok": False, "p99_ms": 12.3456789, "throughput_msgs_s": 99.87,
             "violations": ["p99 12.35 ms >= 5 ms"]}
    result = {"probes": [dict(probe, load=100.0), dict(probe, load=50.0),
                         dict(probe, load=25.0, ok=True, p99_ms=1.0, violations=[]),
                         dict(probe, load=35.3553390593, ok=True, p99_ms=1.0, violations=[])],
              "searched_down": True, "floor": 1.5625, "max_load": 35.3553390593,
              "bracket": [35.3553390593, 50.0], "converged": False}
    searching.print_search(result, 100.0, "p99<5ms", 0.05, "msgs/s")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "probe       100 msgs/s: FAIL p99 12.346 ms, 100 msgs/s  p99 12.35 ms >= 5 ms"
    assert out[3].startswith("probe      35.4 msgs/s: ok ")
    assert out[4] == ("the first probe (100 msgs/s) failed: searched down, halving the load, "
                      "to at most the floor of 1.56 msgs/s")
    assert out[5] == "max load meeting p99<5ms: 35.4 msgs/s (tolerance 5%, not converged)"
    searching.print_search(dict(result, max_load=None, bracket=[None, 1.5625]), 100.0,
                           "p99<5ms", 0.05, "msgs/s")
    assert capsys.readouterr().out.splitlines()[-1] == (
        "no load from 1.56 to 100 msgs/s meets p99<5ms")


def test_search_over_rate_plans_the_open_loop() -> None:
    plan = cfg.build_plan(cfg.settings({}, {"host": "127.0.0.1:9", "conns": "4"}))
    assert plan.pacing.mode == "closed"
    searched = search_plan(plan, "rate", 400.0)
    assert searched.pacing.mode == "open" and searched.pacing.rate == 100.0
    assert search_plan(plan, "conns", 4.0) is plan


# ---------------------------------------------------------------------------- busy machine

HOG_S = 12.0


@contextlib.contextmanager
def hog_on(core: int) -> Iterator[int]:
    """A busy loop pinned to ``core``, bounded to HOG_S seconds, stopped by its pid (which
    it yields)."""
    code = (f"import os, time\nos.sched_setaffinity(0, {{{core}}})\n"
            f"end = time.monotonic() + {HOG_S}\nwhile time.monotonic() < end: pass\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.mark.e2e
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a worker and a server core")
@pytest.mark.alone
def test_calibrate_refuses_a_ceiling_on_a_busy_worker_core(tmp_path: Path) -> None:
    worker_core = min(os.sched_getaffinity(0))
    with hog_on(worker_core):
        r = harness("calibrate", "--duration", "1", "--conns", "10", cwd=tmp_path, timeout=60)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "ceiling:" not in r.stdout
    line = r.stderr.strip()
    assert line.startswith("harness: calibrate: no ceiling: the machine is busy: other "
                           "processes took ")
    assert "during the ceiling run" in line and "Run it again on an idle machine." in line


@pytest.mark.e2e
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a worker and a server core")
@pytest.mark.alone
def test_a_hog_on_the_worker_core_flags_the_step_and_no_step_is_judged(tmp_path: Path) -> None:
    worker_core = min(os.sched_getaffinity(0))
    run = ["run", "--conns", "5", "--duration", "1.5", "--warmup", "0.3", "--no-report",
           "--results-dir", str(tmp_path)]
    with hog_on(worker_core) as hog:
        r = harness(*run, cwd=tmp_path, timeout=60)
        anyway = harness(*run, "--judge-shared-core", "--json", cwd=tmp_path, timeout=60)
    assert r.returncode == 4, r.stderr
    assert "SHARED CORE" in r.stdout
    assert re.search(r"shared core: \d+% of core \d+ \(\w+'s\) used by other processes "
                     r"\(>= 30%\), top: ", r.stdout), r.stdout  # who took it, named
    assert "a busy machine; the step is left out of the verdict" in r.stdout  # the legend
    assert "Degradation: no step could be judged" in r.stdout
    (reason,) = [ln for ln in r.stderr.splitlines() if "inconclusive" in ln]
    assert reason.startswith("harness: inconclusive: no step could be judged (harness or "
                             "another process on its cores was the bottleneck): conns=5: ")
    assert "shared core (other processes took " in reason, reason
    # --judge-shared-core: judged all the same, and marked as judged on a shared core
    assert anyway.returncode in (0, 1), anyway.stderr
    (step,) = orjson.loads(anyway.stdout)["steps"]
    assert step["judged_shared_core"] and not step["core_shared"], step.get("shared_core")
    if step["shared_core"]["core"] == worker_core:  # (else the machine was busier still)
        assert hog in [p["pid"] for p in step["shared_core"]["processes"]], step["shared_core"]
