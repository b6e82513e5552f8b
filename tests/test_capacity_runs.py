"""Capacity answers end to end: the real CLI against servers with known limits."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import servers
from tests.busy import judged_loads, ran_ok, skip_if_busy, skip_if_busy_search, unless_busy
from tests.support import harness, harness_processes_at_once, run_json

pytestmark = pytest.mark.e2e  # every test here starts a server or a subprocess

PROBE = ["--workers", "1", "--warmup", "0.2", "--timeout", "1"]  # search writes no results


def common(tmp_path: Path) -> list[str]:
    return [*PROBE, "--no-report", "--results-dir", str(tmp_path / "results")]


SPIKE = """
[scenarios.spike]
stages = [
  { conns = 5, duration = 1.0, label = "before" },
  { conns = 30, duration = 1.0, label = "spike" },
  { conns = 5, duration = 4.0, label = "after" },
]
"""


@pytest.fixture(scope="module")
def waited(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict, str]]:
    """Two soaks (10-11 s) that mostly wait on their servers and judge no core, at once,
    each against its own server: 4 connections at 50 msgs/s each (the memory trend does
    not depend on the load), so none asserts a figure that the other's load could move.
    The growing soak is pinned to core 0, the steady one to core 1 (where there are two).
    Exit code, JSON summary and stderr each."""
    cwd = tmp_path_factory.mktemp("waited")
    for sub in ("g", "s"):
        (cwd / sub).mkdir()
    with contextlib.ExitStack() as stack:
        def start(kind: str, **options: Any) -> servers.Handle:
            return stack.enter_context(servers.start(kind, **options))

        grow, steady = start("grow_memory", step=8 << 20, interval=0.5), start("echo")
        done = harness_processes_at_once({
            "growing": (soak_args(grow, cwd / "g", "--duration", "11", "--rate", "50"), cwd),
            "steady": (soak_args(steady, cwd / "s", "--duration", "10", "--rate", "50"), cwd)},
            timeout=120, cpus={"growing": {0}, "steady": {1}})
    return {name: finished(r) for name, r in done.items()}


def search_args(srv: servers.Handle) -> list[str]:
    """``harness search`` for the capacity of a 2,000 msgs/s token bucket, over rate. Past
    it the queue grows by the excess. With 0.7 s probes (after the 0.2 s warm-up) 2,120
    msgs/s passes at a p99 of 38 ms and 2,220, the next load the bisection probes above
    it, fails at 82 ms: the answer is 2,120, within 10% (2,030 with 1.0 s probes, 2 s
    longer)."""
    return ["search", "--host", f"127.0.0.1:{srv.port}", "--slo", "p99<50ms", "--max-errors",
            "1%", "--over", "rate", "--conns", "10", "--lo", "1000", "--hi", "4000",
            "--duration", "0.7", "--json", *PROBE]


def soak_args(srv: servers.Handle, cwd: Path, *extra: str) -> list[str]:
    """``harness run`` for a 4-connection soak long enough for a trend (10 s)."""
    return ["run", "--host", f"127.0.0.1:{srv.port}", "--conns", "4", "--server-pid",
            str(srv.pid), "--monitor-interval", "0.5", "--json", *extra, *common(cwd)]


def finished(r: subprocess.CompletedProcess) -> tuple[int, dict, str]:
    assert r.stdout.strip(), r.stderr
    return r.returncode, orjson.loads(r.stdout.splitlines()[-1]), r.stderr


@pytest.mark.alone
def test_search_finds_a_token_bucket_capacity_within_10_percent(tmp_path: Path) -> None:
    # on its own: its probes run at up to 4,000 msgs/s and judge their core
    with servers.start("token_bucket", rate=2000.0) as srv:
        r = harness(*search_args(srv), cwd=tmp_path)
    doc = orjson.loads(r.stdout)
    skip_if_busy_search(doc)
    assert r.returncode == 0, r.stderr
    assert doc["unit"] == "msgs_s" and doc["slo"] == "p99<50ms"
    assert abs(doc["max_load"] - 2000.0) <= 0.10 * 2000.0, doc["probes"]
    assert len(doc["probes"]) >= 3
    assert all({"load", "ok", "p99_ms"} <= p.keys() for p in doc["probes"])


@pytest.mark.alone
def test_search_over_rate_without_rate_measures_open_loop(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        r = harness("search", "--host", f"127.0.0.1:{srv.port}", "--lo", "200", "--hi", "400",
                    "--conns", "2", "--duration", "0.5", "--warmup", "0.1", "--workers", "1",
                    "--max-probes", "2", "--slo", "p99<1s", "--json", cwd=tmp_path)
    doc = orjson.loads(r.stdout)
    skip_if_busy_search(doc)
    assert r.returncode == 0, r.stderr
    if doc["client_limit"]:  # a busy machine made the client fall behind at 400 msgs/s
        pytest.skip(f"the client could not drive {doc['client_limit']} msgs/s here")
    assert judged_loads(doc) == [200.0, 400.0]
    for p in (p for p in doc["probes"] if p["judged"]):
        assert p["ok"], p
        # open-loop figures: service time from the actual send, behind-schedule sends counted
        assert p["service_p99_ms"] is not None and p["behind_schedule"] is not None, p


@pytest.mark.alone
def test_until_degraded_stops_at_the_step_past_capacity(tmp_path: Path) -> None:
    # on its own: it judges its core
    # 100 msgs/s per connection against a 1000 msgs/s server: 8 conns fit, 16 do not
    def run() -> dict:
        with servers.start("token_bucket", rate=1000.0) as srv:
            r = harness("run", "--host", f"127.0.0.1:{srv.port}", "--conns", "2", "--rate",
                        "100", "--until-degraded", "--max-conns", "64", "--duration", "1.0",
                        "--server-pid", str(srv.pid), "--json", *common(tmp_path),
                        cwd=tmp_path)
        return orjson.loads(r.stdout)

    doc = unless_busy(run)
    skip_if_busy(doc)
    assert [s["conns"] for s in doc["steps"]] == [2, 4, 8, 16], doc["degradation"]
    assert doc["degradation"]["degraded_at"] == 16
    assert doc["degradation"]["last_healthy"] == 8


@pytest.mark.alone
def test_spike_recovery_time_is_reported_within_a_second(tmp_path: Path) -> None:
    """The server answers in 10 ms, in 60 ms while over 10 connections, and stays slow for
    1.5 s after the count drops back. On its own: the recovery is judged against a band of
    25% of the 12 ms p99, which other tests' load beside it broke (5.0 s for 2.5 s).
    Per-second points: the spike ends at 2 s, the point [3, 4) is still slow, so [4, 5)
    and [5, 6) are the two healthy seconds that end the 6 s scenario: 2.0 s is read. Run
    once more when no recovery was read, or a core was shared (skipped if still shared):
    this VM now and then stalls a core for most of a second, which a 25% band around 12 ms
    reads as a slow second (a clean-clone run failed so, 2026-12-06; alone, 3 of 3 passed
    after)."""
    (tmp_path / "spike.toml").write_text(SPIKE)

    def run() -> dict:
        with servers.start("slow_start", threshold=10, delay=0.010, slow_delay=0.060,
                           recovery=1.5) as slow:
            r = harness("run", "--config", "spike.toml", "--scenario", "spike", "--host",
                        f"127.0.0.1:{slow.port}", "--json", *common(tmp_path), cwd=tmp_path)
        return finished(r)[1]

    doc = unless_busy(run)
    if not doc["steps"][0]["recovery"]["recovered"]:
        doc = unless_busy(run)
    skip_if_busy(doc)
    (step,) = doc["steps"]
    assert [s["conns"] for s in step["stages"]] == [5, 30, 5]
    # a row per stage: its own throughput and latency (10 ms before, 60 ms in the spike)
    before, spike, _ = step["stages"]
    assert before["received"] > 0 and spike["received"] > 0
    assert before["throughput_msgs_s"] > 0
    assert spike["latency_ms"]["p50"] > 2 * before["latency_ms"]["p50"]
    assert sum(st["received"] for st in step["stages"]) <= step["received"]
    rec = step["recovery"]
    assert rec["recovered"], rec
    assert abs(rec["recovery_s"] - 1.5) <= 1.0, rec
    assert step["connected"] >= 30


def test_soak_against_a_growing_server_says_memory_grows(
        waited: dict[str, tuple[int, dict, str]]) -> None:
    code, doc, err = waited["growing"]
    assert ran_ok(code, doc), err
    (step,) = doc["steps"]
    assert step["trend"]["memory_growing"], step["trend"]
    assert "memory" in step["trend"]["verdict"]
    assert step["resources"]["server"]["rss_max_bytes"] > step["resources"]["server"][
        "rss_start_bytes"]


def test_soak_against_a_steady_server_is_stable(waited: dict[str, tuple[int, dict, str]]
                                                ) -> None:
    _, doc, _ = waited["steady"]
    (step,) = doc["steps"]
    assert not step["trend"]["memory_growing"], step["trend"]


def test_thresholds_fail_with_exit_1_and_pass_with_exit_0(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text("[thresholds]\np99_ms = 5.0\n\n[env.relaxed.thresholds]\np99_ms = 200.0\n")
    with servers.start("delay", delay=0.020) as srv:
        host = f"127.0.0.1:{srv.port}"
        args = ["--host", host, "--conns", "4", "--duration", "1", *common(tmp_path)]
        strict = harness("run", "--config", str(config), *args, cwd=tmp_path)
        relaxed = harness("run", "--config", str(config), "--env", "relaxed", *args, cwd=tmp_path)
    assert strict.returncode == 1
    out = strict.stdout
    assert "THRESHOLD FAILED: p99_ms" in out and "at step conns=4" in out
    assert relaxed.returncode == 0 or (relaxed.returncode == 4 and "THRESHOLD" not in
                                       relaxed.stdout and "no step could be judged"
                                       in relaxed.stdout), relaxed.stdout


def test_unknown_scenario_stage_or_threshold_key_exits_2(tmp_path: Path) -> None:
    bad_stage = tmp_path / "s.toml"
    bad_stage.write_text("[scenarios.x]\nstages = [{ conns = 5, speed = 2 }]\n")
    r1 = harness("run", "--config", str(bad_stage), "--scenario", "x", cwd=tmp_path)
    good = tmp_path / "g.toml"  # a bad key anywhere in a file is reported first, whatever runs
    good.write_text("[scenarios.x]\nconns = [5]\n")
    r2 = harness("run", "--config", str(good), "--scenario", "nope", cwd=tmp_path)
    bad_th = tmp_path / "t.toml"
    bad_th.write_text("[thresholds]\np98_ms = 3\n")
    r3 = harness("run", "--config", str(bad_th), cwd=tmp_path)
    r4 = harness("search", "--slo", "p99 < fast", "--host", "127.0.0.1:1", cwd=tmp_path)
    assert (r1.returncode, r2.returncode, r3.returncode, r4.returncode) == (2, 2, 2, 2)
    assert "stages[0].speed" in r1.stderr
    assert "'nope'" in r2.stderr
    assert "thresholds.p98_ms" in r3.stderr
    assert "fast" in r4.stderr and "search -h" in r4.stderr  # grammar there
    assert len(r4.stderr.splitlines()) == 1


def test_server_pid_that_does_not_exist_warns_and_the_run_goes_on(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        r = harness("run", "--host", f"127.0.0.1:{srv.port}", "--conns", "2", "--duration",
                    "0.5", "--server-pid", "999999", "--json", *common(tmp_path), cwd=tmp_path)
    assert ran_ok(r.returncode, orjson.loads(r.stdout))
    assert "999999" in r.stderr
    assert any("999999" in w for w in orjson.loads(r.stdout)["warnings"])


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> dict:
    """``harness run ARGS --json`` into ``cwd/r``: its JSON summary."""
    r, doc = run_json(*args, cwd=cwd, results=cwd / "r", timeout=timeout)
    assert doc is not None, r.stderr
    return doc


def series(cwd: Path) -> list[int]:
    (folder,) = (cwd / "r").iterdir()
    return [int(line.split(",")[1]) for line in
            (folder / "series-step0.csv").read_text().splitlines()[1:]]


def test_stages_without_a_rate_take_the_run_rate(tmp_path: Path) -> None:
    (tmp_path / "stages.toml").write_text("""
[scenarios.flat]
stages = [
  { conns = 2, duration = 1.5 },
  { conns = 3, duration = 1.5 },
]
""")
    with servers.start("echo") as srv:
        r = harness("run", "--config", "stages.toml", "--scenario", "flat", "--rate", "50",
                    "--host", f"127.0.0.1:{srv.port}", "--warmup", "0.1", "--workers", "1",
                    "--no-report", "--json", cwd=tmp_path)
    doc = orjson.loads(r.stdout)
    assert ran_ok(r.returncode, doc), r.stderr
    assert doc["config"]["pacing"]["mode"] == "open"
    assert [st["rate"] for st in doc["config"]["steps"][0]["stages"]] == [50.0, 50.0]
    (step,) = doc["steps"]
    assert "service_ms" in step
    (folder,) = (tmp_path / "results").iterdir()
    rows = (folder / "series-step0.csv").read_text().splitlines()[1:]
    sent = [int(line.split(",")[1]) for line in rows]
    # 2 conns x 50/s = 100 per second, then 3 x 50/s = 150 (closed loop would be thousands)
    assert abs(sent[0] - 100) <= 20, sent
    assert abs(sent[2] - 150) <= 25, sent


@pytest.mark.alone
def test_connections_joining_an_open_loop_stage_start_on_schedule(tmp_path: Path) -> None:
    """Run once more when a step was client-bound or on a shared core (skipped if still on a
    shared core): 2 workers and the server share this VM's 2 cores, and a clean-clone run
    once found a worker client-bound there (2026-12-06; alone, 3 of 3 passed after)."""
    config = tmp_path / "s.toml"
    config.write_text("""[scenarios.s]
stages = [{ conns = 2, duration = 1.0, rate = 100.0 }, { conns = 6, duration = 1.0, rate = 100.0 },
          { conns = 2, duration = 1.0, rate = 100.0 }]
""")

    def run() -> dict:
        shutil.rmtree(tmp_path / "r", ignore_errors=True)
        with servers.start("delay", delay=0.005) as srv:
            return run_cli("--config", str(config), "--scenario", "s", "--host",
                           f"127.0.0.1:{srv.port}", "--warmup", "0.3", "--workers", "2",
                           "--timeout", "1", cwd=tmp_path)

    doc = unless_busy(run)
    if doc["steps"][0]["client_bound"]:
        doc = unless_busy(run)
    skip_if_busy(doc)
    sent = series(tmp_path)  # a second per stage: the stages start on whole seconds
    assert abs(sent[0] - 200) <= 30, sent
    assert abs(sent[1] - 600) <= 60, sent  # the 4 joining start now: no burst of old messages
    assert abs(sent[2] - 200) <= 30, sent
    (step,) = doc["steps"]
    assert step["latency_ms"]["p99"] < 50 and not step["client_bound"]


def open_then_closed(tmp_path: Path, open_s: float, rate: float, delay: float) -> list[int]:
    """An open stage of 2 connections at ``rate`` each for ``open_s``, then a closed one
    (1 in flight) for 2 s, against a server that answers in ``delay`` seconds: the sends
    of each second."""
    config = tmp_path / "s.toml"
    config.write_text(f"""[scenarios.oc]
stages = [{{ conns = 2, duration = {open_s}, rate = {rate} }}, {{ conns = 2, duration = 2.0 }}]
""")
    with servers.start("delay", delay=delay) as srv:
        run_cli("--config", str(config), "--scenario", "oc", "--host", f"127.0.0.1:{srv.port}",
                "--warmup", "0.2", "--workers", "1", "--timeout", "2", cwd=tmp_path)
    return series(tmp_path)


def test_an_open_loop_stage_then_a_closed_loop_stage(tmp_path: Path) -> None:
    sent = open_then_closed(tmp_path, 2.0, 50.0, 0.01)
    assert all(abs(x - 100) <= 15 for x in sent[0:2]), sent
    # closed loop, 1 in flight over 10 ms: at most 2 x 100/s, not a pile of credits
    assert all(100 <= x <= 210 for x in sent[2:4]), sent


def test_a_closed_loop_stage_after_a_backlog_keeps_its_window(tmp_path: Path) -> None:
    """An open stage leaves each connection about 20 requests in flight (200/s against a
    server that answers in 100 ms); the closed stage after it keeps 1 in flight: at most
    2 x 10/s once the backlog is answered. Its replies do not each grant a credit back
    while more than the window is out: 20 in flight would send some 400 a second."""
    sent = open_then_closed(tmp_path, 1.0, 200.0, 0.1)
    assert 150 <= sent[0] <= 440, sent  # the open stage: 2 x 200/s (fewer on a busy machine)
    assert all(x <= 24 for x in sent[1:3]), sent  # the closed stage: 2 x 10/s


def test_open_loop_stages_follow_their_rates(tmp_path: Path) -> None:
    config = tmp_path / "stages.toml"
    config.write_text("""
[scenarios.steps]
stages = [
  { conns = 4, duration = 2.0, rate = 50.0 },
  { conns = 8, duration = 2.0, rate = 100.0 },
]
""")
    with servers.start("echo") as srv:
        r = harness("run", "--config", str(config), "--scenario", "steps", "--host",
                    f"127.0.0.1:{srv.port}", "--json", *common(tmp_path), cwd=tmp_path)
    assert ran_ok(r.returncode, orjson.loads(r.stdout)), r.stderr
    (step,) = orjson.loads(r.stdout)["steps"]
    (folder,) = (tmp_path / "results").iterdir()
    rows = (folder / "series-step0.csv").read_text().splitlines()[1:]
    sent = [int(line.split(",")[1]) for line in rows]
    # 4 conns x 50/s = 200 per second, then 8 x 100/s = 800 per second
    assert all(abs(x - 200) <= 20 for x in sent[:2]), sent
    assert all(abs(x - 800) <= 60 for x in sent[2:4]), sent
    assert step["sent"] == sum(sent[:4]) and step["lost"] == 0
    assert "service_ms" in step
