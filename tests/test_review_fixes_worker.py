"""Regression tests for bugs an adversarial review found in the worker and the figures."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from harness import aggregate
from tests import servers
from tests.conftest import plan_for, run_plan


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> dict:
    r = subprocess.run([sys.executable, "-m", "harness", "run", *args, "--json", "--no-report",
                        "--results-dir", str(cwd / "r")], cwd=cwd, timeout=timeout,
                       capture_output=True, stdin=subprocess.DEVNULL)
    assert r.stdout, r.stderr.decode()
    return orjson.loads(r.stdout)


def series(cwd: Path) -> list[int]:
    (folder,) = (cwd / "r").iterdir()
    return [int(line.split(",")[1]) for line in
            (folder / "series-step0.csv").read_text().splitlines()[1:]]


def test_a_huge_max_frame_does_not_stop_the_worker_reading() -> None:
    with servers.start("echo", max_frame=1 << 25) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="2", duration=1.0,
                                 max_frame=1 << 24))
    assert s["received"] > 100 and s["lost"] == 0 and sum(s["errors"].values()) == 0


def test_error_rate_counts_each_failed_message_once() -> None:
    with servers.start("mangle", every=10) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="2", messages="200",
                                 inflight=20, warmup=0.0, timeout=0.3))
    # a mangled reply arrived: one protocol error, its slot freed (no timeout as well)
    assert s["lost"] == 20 and s["errors"]["protocol"] == 20 and s["errors"]["timeout"] == 0
    assert aggregate.error_rate(s) == 0.1  # 20 failed messages of 200, not 60 "errors"


def test_late_replies_count_as_failed_but_warm_up_errors_do_not() -> None:
    with servers.start("delay", delay=0.05) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="1", duration=1.0,
                                 warmup=0.2, timeout=0.02))
    # every reply takes 50 ms > 20 ms: late, or lost when it lands after the 20 ms drain
    assert s["late"] + s["lost"] == s["sent"] > 0 and s["late"] > 0
    assert aggregate.error_rate(s) == 1.0


def test_connections_joining_an_open_loop_stage_start_on_schedule(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text("""[scenarios.s]
stages = [{ conns = 2, duration = 2.0, rate = 100.0 }, { conns = 6, duration = 2.0, rate = 100.0 },
          { conns = 2, duration = 2.0, rate = 100.0 }]
""")
    with servers.start("delay", delay=0.005) as srv:
        doc = run_cli("--config", str(config), "--scenario", "s", "--host",
                      f"127.0.0.1:{srv.port}", "--warmup", "0.3", "--workers", "2",
                      "--timeout", "1", cwd=tmp_path)
    sent = series(tmp_path)
    assert all(abs(x - 200) <= 30 for x in sent[0:2]), sent
    assert all(abs(x - 600) <= 60 for x in sent[2:4]), sent  # no burst of old messages
    assert all(abs(x - 200) <= 30 for x in sent[4:6]), sent
    (step,) = doc["steps"]
    assert step["latency_ms"]["p99"] < 50 and not step["client_bound"]


def test_an_open_loop_stage_then_a_closed_loop_stage(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text("""[scenarios.oc]
stages = [{ conns = 2, duration = 2.0, rate = 50.0 }, { conns = 2, duration = 2.0 }]
""")
    with servers.start("delay", delay=0.01) as srv:
        run_cli("--config", str(config), "--scenario", "oc", "--host", f"127.0.0.1:{srv.port}",
                "--warmup", "0.2", "--workers", "1", "--timeout", "2", cwd=tmp_path)
    sent = series(tmp_path)
    assert all(abs(x - 100) <= 15 for x in sent[0:2]), sent
    # closed loop, 1 in flight over 10 ms: at most 2 x 100/s, not a pile of credits
    assert all(100 <= x <= 210 for x in sent[2:4]), sent


def test_broadcast_with_two_workers_waits_for_the_slower_sender() -> None:
    with servers.start("chat_faulty", every=7, victim=1, fault="drop") as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", workload="chat", conns="2",
                                 listen=2, messages="140", warmup=0.0, workers=2, timeout=0.3))
    assert s["deliveries_expected"] == 140 * 4
    assert s["lost"] == 20  # 140 messages to the victim, every 7th dropped


def test_a_server_that_holds_the_socket_full_is_not_the_client_being_slow() -> None:
    with servers.start("stall", period=2.0, pause=0.9) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="1", rate=300.0,
                                 size="65536", max_frame=1 << 20, duration=3.0, warmup=0.3))
    assert s["latency_ms"]["max"] > 300  # the stall shows in the latency
    assert not s["client_bound"], (s["behind_schedule"], s["client_cpu_pct"])


def test_ctrl_c_while_connections_hang_stops_within_seconds(tmp_path: Path) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)  # never accepts: once the backlog is full, connects hang in SYN-SENT
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--host",
             f"127.0.0.1:{hole.getsockname()[1]}", "--conns", "6", "--workers", "1",
             "--connect-timeout", "30", "--duration", "1", "--no-report", "--results-dir",
             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        hole.close()
    assert proc.returncode == 1
    assert elapsed < 8, elapsed
