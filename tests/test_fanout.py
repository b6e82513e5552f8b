"""Chat fan-out across nodes: exact delivery accounting per node, against real servers."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import orjson
import pytest

from harness.targets import launch
from tests import servers
from tests.busy import ran_ok
from tests.support import harness, plan_for, run_plan

pytestmark = pytest.mark.e2e  # every test here starts a server or a subprocess


@pytest.fixture
def serve_chat_cluster(tmp_path):
    """`harness serve chat --nodes 3` as a real subprocess; yields its addresses."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "chat", "--nodes", "3",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=tmp_path)
    addrs = []
    deadline = time.monotonic() + 20
    while len(addrs) < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        if line.startswith("listening on "):
            addrs.append(line.split()[2])
    try:
        assert len(addrs) == 3, proc.stderr.read().decode() if proc.poll() is not None else addrs
        ports = [int(a.rsplit(":", 1)[1]) for a in addrs]
        assert ports == list(range(ports[0], ports[0] + 3))  # consecutive
        yield addrs
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_cluster_of_three_delivers_exactly_m_times_s_plus_n(serve_chat_cluster, tmp_path):
    hosts = ",".join(serve_chat_cluster)
    r = harness("run", "--workload", "chat", "--host", hosts, "--push-conns", "3", "--listen",
                "1", "--messages", "100", "--inflight", "4", "--warmup", "0", "--workers", "1",
                "--json", "--no-report", "--results-dir", str(tmp_path), cwd=str(tmp_path))
    assert ran_ok(r.returncode, orjson.loads(r.stdout)), r.stderr
    (s,) = orjson.loads(r.stdout)["steps"]
    assert s["deliveries_expected"] == 600  # m * (s + n) = 100 * (3 + 3)
    assert s["deliveries"] == 600
    assert s["lost"] == 0 and s["duplicates"] == 0 and s["reordered"] == 0
    assert [n["deliveries"] for n in s["per_node"]] == [400, 100, 100]
    assert s["fanout_ms"]["p50"] is not None and s["total_s"] >= s["send_s"] > 0
    for key in ("deliveries_expected", "deliveries", "lost", "duplicates", "reordered",
                "fanout_ms", "total_s", "send_s", "per_node"):
        assert key in s


@pytest.mark.parametrize("fault", ["drop", "dup"])
def test_faulty_node_counts_exactly_per_node(fault: str) -> None:
    """Node 0 drops (or doubles) every 10th message to one receiver; node 1 is a chat room
    that nobody links to, so its listener should have got every message and got none."""
    with servers.start("chat_faulty", every=10, victim=0, fault=fault) as n0, \
            servers.start("chat_faulty") as n1:
        hosts = f"127.0.0.1:{n0.port},127.0.0.1:{n1.port}"
        (s,) = run_plan(plan_for(hosts, workload="chat", conns="3", listen=1, messages="100",
                                 inflight=4, warmup=0.0, timeout=0.5))
    node0, node1 = s["per_node"]
    assert node0["deliveries_expected"] == 400 and node1["deliveries_expected"] == 100
    if fault == "drop":
        assert node0["lost"] == 10 and node0["duplicates"] == 0
    else:
        assert node0["lost"] == 0 and node0["duplicates"] == 10
    assert node1["lost"] == 100 and node1["deliveries"] == 0
    assert s["lost"] == node0["lost"] + node1["lost"]


def test_node_dying_mid_run_loses_its_deliveries_others_measured() -> None:
    cluster = launch("chat", nodes=3)
    try:
        hosts = ",".join(f"{h}:{p}" for h, p in cluster.addresses)
        killer = threading.Timer(1.0, cluster.kill_node, args=(2,))
        killer.start()
        (s,) = run_plan(plan_for(hosts, workload="chat", conns="3", listen=2, duration=2.0,
                                 warmup=0.0, rate=50.0, timeout=0.5))
        killer.join()
    finally:
        cluster.stop()
    n0, n1, n2 = s["per_node"]
    assert n0["lost"] == 0 and n1["lost"] == 0
    assert n2["lost"] > 0 and n2["deliveries"] > 0  # it worked, then died
    assert s["errors"]["closed"] + s["errors"]["reset"] == 2  # node 2's two listeners


def test_a_node_down_at_start_exits_3_naming_it(tmp_path):
    with servers.start("chat_faulty") as n0, servers.closed_port() as refuse:
        dead = refuse.port
        hosts = f"127.0.0.1:{n0.port},127.0.0.1:{dead}"
        r = harness("run", "--workload", "chat", "--host", hosts, "--conns", "2", "--messages",
                    "10", cwd=str(tmp_path))
    assert r.returncode == 3
    assert f"127.0.0.1:{dead}" in r.stderr


def test_message_sweep_reports_messages_as_the_load(tmp_path):
    server = launch("chat")
    try:
        h, p = server.addresses[0]
        r = harness("run", "--workload", "chat", "--host", f"{h}:{p}", "--conns", "2",
                    "--messages", "10,50", "--warmup", "0", "--workers", "1", "--json",
                    "--no-report", "--results-dir", str(tmp_path), cwd=str(tmp_path))
    finally:
        server.stop()
    assert ran_ok(r.returncode, orjson.loads(r.stdout)), r.stderr
    doc = orjson.loads(r.stdout)
    assert [s["deliveries"] for s in doc["steps"]] == [20, 100]
    assert doc["degradation"]["unit"] == "messages"


# once, beside the parallel suite, 8 of its 24,000 deliveries missed the 2 s drain (not yet
# explained; a lead: a receiver that the starved chat server had not accepted yet)
@pytest.mark.alone
def test_warm_up_deliveries_never_count_in_the_window() -> None:
    """A busy room (every round a large read) crosses the warm-up boundary mid-round: a
    message stamped inside the window must be counted as sent by its sender, and one
    stamped before it by no one. Six steps, six boundaries: every figure exact."""
    with servers.start("chat") as room:
        steps = run_plan(plan_for(f"127.0.0.1:{room.port}", workload="chat", conns="6",
                                  listen=2, messages="3000,3000,3000,3000,3000,3000",
                                  inflight=8, warmup=0.3, timeout=2.0, workers=2))
    for s in steps:
        assert s["deliveries_expected"] == 3000 * 8
        figures = (s["deliveries"], s["lost"], s["surplus"], s["duplicates"])
        assert figures == (24000, 0, 0, 0), figures
