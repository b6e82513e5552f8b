"""harness.run.monitor against real child processes (no mocks), and trend() on synthetic data.

Every child this file starts ends on its own within CHILD_LIFE_S and is killed (by its
own Popen, so by pid) when its test ends.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from harness.analysis.trends import trend
from harness.run.monitor import Monitor

CHILD_LIFE_S = 10.0  # upper bound on every child's life, even if a test forgets it

BUSY = f"""
import sys, time
print("ready", flush=True)
end = time.monotonic() + {CHILD_LIFE_S}
while time.monotonic() < end:
    pass
"""

SLEEPY = f"""
import time
print("ready", flush=True)
time.sleep({CHILD_LIFE_S})
"""

GROWER = f"""
import time
print("ready", flush=True)
keep = []
for _ in range(8):  # 8 x 20 MB, one every 0.2 s
    block = bytearray(20 << 20)
    block[::4096] = b"x" * len(range(0, len(block), 4096))  # touch every page
    keep.append(block)
    time.sleep(0.2)
print("grown", flush=True)
time.sleep({CHILD_LIFE_S})
"""


@pytest.fixture
def spawn() -> Iterator:
    """spawn(code) -> pid of a python child that has printed "ready"; killed at teardown."""
    children: list[subprocess.Popen] = []

    def start(code: str) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)
        if child.stdout is not None:
            child.stdout.close()


def run_for(mon: Monitor, seconds: float) -> None:
    mon.start()
    try:
        time.sleep(seconds)
    finally:
        mon.stop()


@pytest.mark.e2e
@pytest.mark.alone
def test_busy_and_sleeping_cpu(spawn) -> None:
    busy, sleepy = spawn(BUSY), spawn(SLEEPY)
    mon = Monitor({"busy": busy.pid, "sleepy": sleepy.pid}, interval=0.2)
    run_for(mon, 1.3)
    assert mon.warnings == []
    rows = mon.samples()
    for role, pid in (("busy", busy.pid), ("sleepy", sleepy.pid)):
        mine = [r for r in rows if r["role"] == role]
        assert len(mine) >= 5
        assert all(r["pid"] == pid for r in mine)
        assert mine[0]["cpu_pct"] is None  # no CPU figure before a delta exists
        assert all(r["cpu_pct"] is not None for r in mine[1:])
        assert all(r["rss_bytes"] > 0 and r["threads"] >= 1 and r["fds"] >= 3 for r in mine)
    summary = mon.summary()
    # A busy loop is near 100% of one core over any interval it had a core to itself; the
    # mean only needs to be clearly non-idle, as other jobs on a 2-core machine may share it.
    assert 60 < summary["busy"]["cpu_pct_max"] < 130
    assert summary["busy"]["cpu_pct_mean"] > 25
    assert summary["sleepy"]["cpu_pct_mean"] < 20
    assert summary["sleepy"]["cpu_pct_max"] < 20
    assert summary["busy"]["died_at_s"] is None
    assert summary["busy"]["rss_start_bytes"] > 0 and summary["busy"]["rss_end_bytes"] > 0
    # net_bytes: one system-wide figure per tick, the same on every row of that tick
    by_tick: dict[int, set] = {}
    for r in rows:
        by_tick.setdefault(r["t_ns"], set()).add(r["net_bytes"])
    assert all(len(v) == 1 for v in by_tick.values())
    assert rows[0]["net_bytes"] is None and rows[-1]["net_bytes"] >= 0


@pytest.mark.e2e
def test_marks_window_the_samples(spawn) -> None:
    sleepy = spawn(SLEEPY)
    mon = Monitor({"sleepy": sleepy.pid}, interval=0.1)
    mon.start()
    try:
        time.sleep(0.35)
        mon.mark("step")
        time.sleep(0.35)
        mon.mark("end")
    finally:
        mon.stop()
    since, until = mon.marks["step"], mon.marks["end"]
    rows = mon.samples(since_ns=since, until_ns=until)
    assert 2 <= len(rows) <= 5
    assert all(since <= r["t_ns"] < until for r in rows)
    assert all(0 <= r["second"] < 0.5 for r in rows)
    assert mon.summary(since, until)["sleepy"]["samples"] == len(rows)
    xs, ys = mon.series("sleepy", "rss_bytes", since, until)
    assert xs == [r["second"] for r in rows] and ys == [r["rss_bytes"] for r in rows]


@pytest.mark.e2e
def test_growing_rss_is_a_trend_and_flat_is_not(spawn) -> None:
    grower, flat = spawn(GROWER), spawn(SLEEPY)
    mon = Monitor({"grower": grower.pid, "flat": flat.pid}, interval=0.2)
    mon.start()
    try:  # until the grower has its 160 MB (1.6 s idle; longer when the cores are busy)
        assert grower.stdout.readline().strip() == "grown"
        time.sleep(0.3)  # a sample after it
    finally:
        mon.stop()
    grows = trend(*mon.series("grower", "rss_bytes"))
    stays = trend(*mon.series("flat", "rss_bytes"))
    assert grows["growing"], grows
    assert grows["slope_per_h"] > 0 and grows["end"] > grows["start"]
    assert not stays["growing"], stays
    summary = mon.summary()["grower"]
    assert summary["rss_max_bytes"] - summary["rss_start_bytes"] > 60 << 20


@pytest.mark.e2e
def test_missing_pid_warns_and_is_not_sampled(spawn) -> None:
    missing = 4_194_304 + 12_345  # above Linux's PID_MAX_LIMIT (2**22): cannot exist
    assert not psutil.pid_exists(missing)
    sleepy = spawn(SLEEPY)
    mon = Monitor({"server": missing, "sleepy": sleepy.pid}, interval=0.1)
    assert mon.warnings == [f"server pid {missing} does not exist: not monitored"]
    run_for(mon, 0.3)
    rows = mon.samples()
    assert rows and {r["role"] for r in rows} == {"sleepy"}
    assert "server" not in mon.summary()
    assert mon.died == {}


@pytest.mark.e2e
def test_killed_child_is_recorded_and_others_go_on(spawn) -> None:
    reaped, zombie, survivor = spawn(SLEEPY), spawn(SLEEPY), spawn(SLEEPY)
    mon = Monitor(
        {"reaped": reaped.pid, "zombie": zombie.pid, "survivor": survivor.pid}, interval=0.1
    )
    mon.start()
    try:
        time.sleep(0.4)
        killed_ns = time.monotonic_ns()
        reaped.kill()
        reaped.wait(timeout=5)  # gone from the process table
        zombie.kill()  # not waited for: stays a zombie until teardown
        time.sleep(0.5)
    finally:
        mon.stop()
    assert set(mon.died) == {"reaped", "zombie"}
    summary = mon.summary()
    for role in ("reaped", "zombie"):
        assert mon.died[role] >= killed_ns
        assert 0.3 < summary[role]["died_at_s"] < 0.8
        assert all(r["t_ns"] < mon.died[role] for r in mon.samples() if r["role"] == role)
    assert summary["survivor"]["died_at_s"] is None
    after = [r for r in mon.samples(since_ns=killed_ns) if r["role"] == "survivor"]
    assert len(after) >= 3
    assert any("reaped" in w and "died" in w for w in mon.warnings)
    # a window that ends before the death does not report it
    assert mon.summary(until_ns=killed_ns)["reaped"]["died_at_s"] is None


@pytest.mark.e2e
def test_stop_joins_promptly(spawn) -> None:
    sleepy = spawn(SLEEPY)
    for interval in (1.0, 30.0):
        mon = Monitor({"sleepy": sleepy.pid}, interval=interval)
        mon.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        mon.stop()
        assert time.monotonic() - t0 < 2.0
        assert mon._thread is not None and not mon._thread.is_alive()
        mon.stop()  # twice is harmless
    with pytest.raises(ValueError):
        Monitor({}, interval=0.0)


# -- trend on synthetic data ---------------------------------------------------------------


def test_trend_line_and_flat() -> None:
    xs = [float(i) for i in range(20)]
    rising = trend(xs, [100.0 + 2.0 * x for x in xs])  # +38% over the run, exact fit
    assert rising["growing"]
    assert rising["slope_per_h"] == pytest.approx(7200.0)
    assert rising["start"] == pytest.approx(100.0) and rising["end"] == pytest.approx(138.0)
    flat = trend(xs, [100.0] * 20)
    assert not flat["growing"] and flat["slope_per_h"] == 0.0


def test_trend_needs_a_real_rise() -> None:
    xs = [float(i) for i in range(20)]
    small = trend(xs, [1000.0 + 2.0 * x for x in xs])  # exact but only +3.8%
    assert not small["growing"]
    noisy = [100.0 + (30.0 if i % 2 else -30.0) + 1.0 * i for i in range(20)]  # sawtooth
    assert not trend(xs, noisy)["growing"]
    assert not trend(xs, [100.0 + 2.0 * x for x in xs], min_rise=50.0)["growing"]
    assert not trend([0.0, 1.0], [1.0, 100.0])["growing"]  # two points prove nothing
    assert trend([], [])["start"] is None
    with_gaps = trend([0.0, 1.0, 2.0, 3.0], [None, 10.0, 20.0, 30.0])
    assert with_gaps["n"] == 3 and with_gaps["growing"]
    with pytest.raises(ValueError):
        trend([0.0], [1.0, 2.0])


PINNED = """
import os
os.sched_setaffinity(0, {0})
"""


@pytest.mark.e2e
@pytest.mark.alone
def test_other_processes_on_a_pinned_core_are_measured_and_known_ones_excluded(spawn) -> None:
    sleepy = spawn(PINNED + SLEEPY)  # stands for a worker pinned to core 0
    hog = spawn(PINNED + BUSY)  # something else on the worker's core
    blind = Monitor({"worker0": sleepy.pid}, interval=0.2)
    aware = Monitor({"worker0": sleepy.pid}, interval=0.2, known={hog.pid})
    blind.start()
    aware.start()
    try:
        time.sleep(1.3)
    finally:
        blind.stop()
        aware.stop()
    worker = blind.summary()["worker0"]
    assert worker["core"] == 0
    # the hog had core 0 to itself but for the other jobs of a shared 2-core machine
    assert worker["others_on_core_pct"] > 40
    cores = blind.cores()
    assert set(cores) >= {0} and cores[0]["busy_pct_mean"] >= worker["others_on_core_pct"]
    # the same seconds, with the hog known (as a local target server would be): not "other"
    known = aware.summary()["worker0"]["others_on_core_pct"]
    assert worker["others_on_core_pct"] - known > 30
    # who the other load was: the hog, named with its share of core 0; a known one never
    named = {p["pid"]: p for p in blind.other_procs(core=0)}  # the top 3 on core 0
    assert hog.pid in named and named[hog.pid]["cpu_pct"] > 10, named
    assert named[hog.pid]["name"].startswith("python")
    assert hog.pid not in [p["pid"] for p in aware.other_procs()]


@pytest.mark.e2e
def test_an_unpinned_process_has_no_core(spawn) -> None:
    sleepy = spawn(SLEEPY)
    mon = Monitor({"server": sleepy.pid}, interval=0.1)
    run_for(mon, 0.5)
    summary = mon.summary()["server"]
    if len(psutil.Process(sleepy.pid).cpu_affinity()) > 1:
        assert summary["core"] is None and summary["others_on_core_pct"] is None
