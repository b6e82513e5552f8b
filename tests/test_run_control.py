"""Run control: interrupts keep what was measured (signals to the whole process group, a
real Ctrl-C on a terminal, a worker killed mid-step); connect pacing; server thresholds;
mangled stamps in a broadcast room."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import psutil
import pytest

from harness.run.shares import build_shares
from harness.wire.poller import Poller
from harness.worker.worker import Worker
from tests import servers
from tests.support import harness, plan_for, run_plan, wait_connections, wait_process_connections
from workloads import load


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_writes_the_steps_measured_so_far_marked_partial(tmp_path: Path, sig) -> None:
    with servers.start("echo") as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--host", f"127.0.0.1:{srv.port}",
             "--conns", "2,3,4", "--duration", "4", "--warmup", "0.1", "--workers", "1",
             "--json", "--no-report", "--results-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        # inside the second step: its 3 connections are up (the first step has 2, the third
        # 4), then 0.8 s into it (whatever the machine's load made of the start and the
        # first step)
        wait_process_connections(proc.pid, srv.port, 3)
        time.sleep(0.8)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err.decode()
    doc = orjson.loads(out)
    assert doc["partial"] is True
    assert [s["conns"] for s in doc["steps"]] == [2, 3], err.decode()
    assert doc["steps"][0]["partial"] is False and doc["steps"][1]["partial"] is True
    assert doc["steps"][1]["received"] > 0
    # the cut step's throughput is over the window it had, not the planned 4 s: the signal
    # comes 0.8 s after the test sees the step's connections (late on a busy machine), and
    # a worker hears the stop at its next once-a-second report (a 2 s step once read 1.92 s)
    cut = doc["steps"][1]
    assert 0.3 < cut["duration_s"] < 3.5, cut["duration_s"]
    assert cut["throughput_msgs_s"] == pytest.approx(cut["received"] / cut["duration_s"],
                                                     rel=1e-3)
    assert doc["steps"][1]["lost"] == 0, cut  # in-flight messages got a short drain
    (folder,) = tmp_path.iterdir()
    saved = orjson.loads((folder / "run.json").read_bytes())
    assert saved["partial"] is True and len(saved["steps"]) == 2
    assert "interrupted" in err.decode()


@pytest.mark.e2e
def test_connect_rate_paces_new_connections() -> None:
    with servers.start("echo") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="40", connect_rate=100.0)
        workload = load("echo")(64, 1)
        worker = Worker(0, plan, workload, [(socket.AF_INET, ("127.0.0.1", srv.port))])
        share = build_shares(plan, plan.steps[0], type(workload), 5)[0]
        t0 = time.monotonic()
        worker.connect(share, Poller(), time.monotonic_ns() + 10**10)
        elapsed = time.monotonic() - t0
        worker.close_all()
    assert worker.res.connected == 40
    assert 0.35 <= elapsed <= 2.0  # 40 connections at 100/s: ~0.39 s, not all at once


@pytest.mark.e2e
def test_server_thresholds_fail_when_exceeded_or_not_measurable(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text("[thresholds]\nmax_server_rss_mb = 1.0\n")
    with servers.start("echo") as srv:
        args = ["run", "--config", str(config), "--host", f"127.0.0.1:{srv.port}", "--conns",
                "2", "--duration", "1", "--warmup", "0.1", "--no-report", "--monitor-interval",
                "0.2", "--results-dir", str(tmp_path / "r")]
        watched = harness(*args, "--server-pid", str(srv.pid), cwd=tmp_path, timeout=60)
        blind = harness(*args, cwd=tmp_path, timeout=60)
    assert watched.returncode == 1
    assert "max_server_rss_mb" in watched.stdout and "> 1.0 MB" in watched.stdout
    assert blind.returncode == 1
    assert "not measured" in blind.stdout


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_connections_spread_over_source_addresses() -> None:
    with servers.start("echo") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="12", source_addrs="127.0.0.2-127.0.0.4")
        assert plan.source_addrs == ("127.0.0.2", "127.0.0.3", "127.0.0.4")
        workload = load("echo")(64, 1)
        worker = Worker(0, plan, workload, [(socket.AF_INET, ("127.0.0.1", srv.port))])
        share = build_shares(plan, plan.steps[0], type(workload), 5)[0]
        worker.connect(share, Poller(), time.monotonic_ns() + 10**10)
        used = [s.getsockname()[0] for s in worker.socks if s is not None]
        worker.close_all()
    assert len(used) == 12
    assert {a: used.count(a) for a in set(used)} == {"127.0.0.2": 4, "127.0.0.3": 4,
                                                      "127.0.0.4": 4}


def test_source_addresses_are_automatic_past_one_address_worth_of_ports() -> None:
    assert plan_for("127.0.0.1:5000", conns="12000").source_addrs == ()
    some = plan_for("127.0.0.1:5000", conns="12001")
    assert some.source_addrs == ("127.0.0.1", "127.0.0.2")  # connect() slows past ~14,000
    many = plan_for("127.0.0.1:5000", conns="60000", workers=4)
    assert many.source_addrs == tuple(f"127.0.0.{k}" for k in range(1, 8))
    with pytest.raises(ValueError, match="source-addrs"):
        plan_for("127.0.0.1:5000", source_addrs="127.0.0.9-127.0.0.1")


# ---------------------------------------------------------------------------- signals
# A terminal's Ctrl-C and `timeout` signal the whole foreground process group: harness,
# its workers and (unless it has a session of its own) the embedded server.


def harness_in_own_group(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m harness ARGS`` as the leader of a new session and process group."""
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 40) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    return out.decode(errors="replace"), err.decode(errors="replace")


def one_run(results: Path) -> dict:
    (folder,) = results.iterdir()
    return orjson.loads((folder / "run.json").read_bytes())


@pytest.mark.e2e
def test_a_group_sigterm_as_timeout_sends_keeps_the_measured_step(tmp_path: Path) -> None:
    # `timeout -s TERM 3 harness run ...` signals harness and its workers at once
    with servers.start("echo") as srv:
        proc = harness_in_own_group(
            ["run", "--host", f"127.0.0.1:{srv.port}", "--conns", "4,6", "--duration", "5",
             "--warmup", "0.1", "--workers", "2", "--no-report",
             "--results-dir", str(tmp_path / "r")], tmp_path)
        measuring(srv.port, 4)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = finish(proc)
    assert "Traceback" not in err, err
    assert proc.returncode == 1, err
    doc = one_run(tmp_path / "r")
    assert doc["partial"] is True
    (step,) = doc["steps"]
    assert step["conns"] == 4 and step["partial"] is True and step["received"] > 0
    assert sum(step["errors"].values()) == 0 and step["lost"] == 0
    assert "interrupted" in err


def measuring(port: int, conns: int) -> None:
    """Until the step's ``conns`` connections to ``port`` are established, then past its
    0.1 s warm-up into the measure window (a fixed sleep was too short on a busy machine and
    longer than needed on a quiet one)."""
    wait_connections(port, conns)
    time.sleep(0.6)


def run_in_pty(args: list[str], cwd: Path, press_at: float, timeout: float = 60
               ) -> tuple[int, str]:
    """``python -m harness ARGS`` on a terminal of its own; Ctrl-C typed at ``press_at`` s
    (the terminal sends SIGINT to its whole foreground process group). Exit code, output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: session leader, the pty its controlling terminal
        os.chdir(cwd)
        os.execv(sys.executable, [sys.executable, "-m", "harness", *args])
    out = bytearray()
    t0, pressed = time.monotonic(), False
    try:
        while time.monotonic() - t0 < timeout:
            if not pressed and time.monotonic() - t0 >= press_at:
                os.write(fd, b"\x03")
                pressed = True
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                out += data
        else:
            os.killpg(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


@pytest.mark.e2e
def test_ctrl_c_in_a_terminal_stops_the_workers_before_the_embedded_server(
        tmp_path: Path) -> None:
    code, text = run_in_pty(["run", "--conns", "5,10", "--duration", "4", "--warmup", "0.2",
                             "--no-report", "--results-dir", str(tmp_path / "r")],
                            tmp_path, press_at=3.0)
    assert "Traceback" not in text, text
    assert code == 1, text
    assert "died" not in text and "THRESHOLD FAILED" not in text, text
    doc = one_run(tmp_path / "r")
    assert doc["partial"] is True and doc["embedded"] == "echo"
    (step,) = doc["steps"]
    assert step["partial"] is True and step["received"] > 0
    assert step["errors"] == {k: 0 for k in step["errors"]}, step["errors"]
    assert step["lost"] == 0


@pytest.mark.e2e
def test_sigterm_before_the_first_step_stops_the_server_cmd(tmp_path: Path) -> None:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with servers.closed_port() as closed, open(out, "wb") as fo, open(err, "wb") as fe:
        # nothing listens: the reachability probe retries for ~5 s after starting the command
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--host", f"127.0.0.1:{closed.port}",
             "--server-cmd", "sleep 30.123", "--conns", "1", "--no-report",
             "--results-dir", str(tmp_path / "r")],
            cwd=tmp_path, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        started: list[psutil.Process] = []
        try:
            deadline = time.monotonic() + 5
            while not started and time.monotonic() < deadline:
                started = [c for c in psutil.Process(proc.pid).children(recursive=True)
                           if "30.123" in " ".join(c.cmdline())]
                time.sleep(0.05)
            assert started, "the --server-cmd process never appeared"
            time.sleep(max(0.0, 1.5 - (time.monotonic() - (deadline - 5))))
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=15)
            elapsed = time.monotonic() - t0
            gone, alive = psutil.wait_procs(started, timeout=5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            for c in started:  # an orphan left behind by a failing run: do not leak it
                if c.is_running():
                    c.kill()
    stderr = err.read_text()
    assert rc == 1, (rc, stderr)
    assert elapsed < 6.0, elapsed
    assert not alive, "the --server-cmd process outlived harness"
    assert "Traceback" not in stderr and "Aborted!" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines == ["harness: interrupted before the first step"], stderr


@pytest.mark.e2e
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
        wait_connections(hole.getsockname()[1], 6, established=False)  # every connect tried
        time.sleep(0.5)  # and hanging
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        hole.close()
    assert proc.returncode == 1
    assert elapsed < 8, elapsed


@pytest.mark.e2e
def test_a_worker_killed_mid_step_is_named_and_the_others_figures_kept(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    with servers.start("echo") as srv:
        proc = harness_in_own_group(
            ["run", "--host", f"127.0.0.1:{srv.port}", "--conns", "4,6", "--duration", "4",
             "--warmup", "0.1", "--workers", "2", "--no-report",
             "--results-dir", str(tmp_path / "r")], tmp_path)
        measuring(srv.port, 4)
        workers = psutil.Process(proc.pid).children()  # forked workers only (no embedded)
        assert len(workers) == 2, workers
        victim = workers[0].pid
        os.kill(victim, signal.SIGKILL)
        out, err = finish(proc)
    assert "Traceback" not in err, err
    assert proc.returncode == 1, err
    assert "SIGKILL" in err and f"pid {victim}" in err, err
    assert "the run went on" not in out
    doc = one_run(tmp_path / "r")
    assert doc["partial"] is True
    (step,) = doc["steps"]  # the run ends with the step the worker died in
    assert step["conns"] == 4 and step["partial"] is True
    assert step["received"] > 0  # the surviving worker's half
    assert step["lost"] == 0 and sum(step["errors"].values()) == 0


@pytest.mark.e2e
def test_echo_connections_spread_over_every_host_given() -> None:
    with servers.start("echo") as a, servers.start("echo") as b, servers.start("echo") as c:
        hosts = ",".join(f"127.0.0.1:{h.port}" for h in (a, b, c))
        plan = plan_for(hosts, conns="7")
        workload = load("echo")(64, 1)
        addrs = [(socket.AF_INET, ("127.0.0.1", h.port)) for h in (a, b, c)]
        worker = Worker(0, plan, workload, addrs)
        share = build_shares(plan, plan.steps[0], type(workload), 5)[0]
        worker.connect(share, Poller(), time.monotonic_ns() + 10**10)
        ports = [s.getpeername()[1] for s in worker.socks if s is not None]
        worker.close_all()
    assert [ports.count(h.port) for h in (a, b, c)] == [3, 2, 2]
    assert worker.res.node_connected.tolist() == [3, 2, 2]


def test_push_hosts_still_choose_the_nodes_and_broadcast_senders_stay_on_one() -> None:
    hosts = "127.0.0.1:5001,127.0.0.1:5002,127.0.0.1:5003"
    echo = build_shares(plan_for(hosts, conns="4", push_hosts="1,2"),
                        plan_for(hosts, conns="4").steps[0], load("echo"), 5)[0]
    assert echo.node.tolist() == [1, 2, 1, 2]
    chat_plan = plan_for(hosts, workload="chat", conns="4", listen=1)
    chat = build_shares(chat_plan, chat_plan.steps[0], load("chat"), 5)[0]
    assert chat.node.tolist() == [0, 0, 0, 0, 0, 1, 2]  # senders on node 0, a listener each
