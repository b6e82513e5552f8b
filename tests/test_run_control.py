"""Run control: interrupts keep what was measured; connect pacing; server thresholds;
mangled stamps in a broadcast room."""

from __future__ import annotations

import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from harness.coordinator import build_shares
from harness.worker import Worker
from tests import servers
from tests.test_measure import plan_for, run_plan
from workloads import load


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_writes_the_steps_measured_so_far_marked_partial(tmp_path: Path, sig) -> None:
    with servers.start("echo") as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--host", f"127.0.0.1:{srv.port}",
             "--conns", "2,3,4", "--duration", "2", "--warmup", "0.1", "--workers", "1",
             "--json", "--no-report", "--results-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        time.sleep(3.3)  # inside the second step
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err.decode()
    doc = orjson.loads(out)
    assert doc["partial"] is True
    assert [s["conns"] for s in doc["steps"]] == [2, 3]
    assert doc["steps"][0]["partial"] is False and doc["steps"][1]["partial"] is True
    assert doc["steps"][1]["received"] > 0
    # the cut step's throughput is over the window it had (~1 s), not the planned 2 s
    cut = doc["steps"][1]
    assert 0.3 < cut["duration_s"] < 1.8, cut["duration_s"]
    assert cut["throughput_msgs_s"] == pytest.approx(cut["received"] / cut["duration_s"],
                                                     rel=1e-3)
    assert doc["steps"][1]["lost"] == 0  # in-flight messages got a short drain
    (folder,) = tmp_path.iterdir()
    saved = orjson.loads((folder / "run.json").read_bytes())
    assert saved["partial"] is True and len(saved["steps"]) == 2
    assert "interrupted" in err.decode()


def test_connect_rate_paces_new_connections() -> None:
    with servers.start("echo") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="40", connect_rate=100.0)
        workload = load("echo")(64, 1)
        worker = Worker(0, plan, workload, [(socket.AF_INET, ("127.0.0.1", srv.port))])
        share = build_shares(plan, plan.steps[0], type(workload), 5)[0]
        t0 = time.monotonic()
        worker.connect(share, selectors.DefaultSelector(), time.monotonic_ns() + 10**10)
        elapsed = time.monotonic() - t0
        worker.close_all()
    assert worker.res.connected == 40
    assert 0.35 <= elapsed <= 2.0  # 40 connections at 100/s: ~0.39 s, not all at once


def test_server_thresholds_fail_when_exceeded_or_not_measurable(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text("[thresholds]\nmax_server_rss_mb = 1.0\n")
    with servers.start("echo") as srv:
        args = ["run", "--config", str(config), "--host", f"127.0.0.1:{srv.port}", "--conns",
                "2", "--duration", "1", "--warmup", "0.1", "--no-report", "--monitor-interval",
                "0.2", "--results-dir", str(tmp_path / "r")]
        watched = subprocess.run([sys.executable, "-m", "harness", *args, "--server-pid",
                                  str(srv.pid)], capture_output=True, timeout=60, cwd=tmp_path)
        blind = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                               timeout=60, cwd=tmp_path)
    assert watched.returncode == 1
    assert "max_server_rss_mb" in watched.stdout.decode() and "> 1.0 MB" in \
        watched.stdout.decode()
    assert blind.returncode == 1
    assert "not measured" in blind.stdout.decode()


def test_a_chat_server_that_mangles_stamps_gives_protocol_errors_not_matches() -> None:
    # one connection in the room: the "mangle" server sends every frame back to it, and
    # corrupts the stamp of every 5th
    with servers.start("mangle", every=5) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", workload="chat", conns="1",
                                 messages="100", inflight=10, warmup=0.0, timeout=0.5))
    assert s["errors"]["protocol"] == 20
    assert s["deliveries_expected"] == 100
    assert s["deliveries"] == 80 and s["lost"] == 20 and s["duplicates"] == 0
    assert np.isfinite(s["fanout_ms"]["p50"])


def test_connections_spread_over_source_addresses() -> None:
    with servers.start("echo") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="12", source_addrs="127.0.0.2-127.0.0.4")
        assert plan.source_addrs == ("127.0.0.2", "127.0.0.3", "127.0.0.4")
        workload = load("echo")(64, 1)
        worker = Worker(0, plan, workload, [(socket.AF_INET, ("127.0.0.1", srv.port))])
        share = build_shares(plan, plan.steps[0], type(workload), 5)[0]
        worker.connect(share, selectors.DefaultSelector(), time.monotonic_ns() + 10**10)
        used = [s.getsockname()[0] for s in worker.socks if s is not None]
        worker.close_all()
    assert len(used) == 12
    assert {a: used.count(a) for a in set(used)} == {"127.0.0.2": 4, "127.0.0.3": 4,
                                                      "127.0.0.4": 4}


def test_source_addresses_are_automatic_past_one_address_worth_of_ports() -> None:
    assert plan_for("127.0.0.1:5000", conns="100").source_addrs == ()
    many = plan_for("127.0.0.1:5000", conns="60000", workers=4)
    assert many.source_addrs == ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    with pytest.raises(ValueError, match="source-addrs"):
        plan_for("127.0.0.1:5000", source_addrs="127.0.0.9-127.0.0.1")
