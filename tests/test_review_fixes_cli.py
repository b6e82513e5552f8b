"""CLI fixes from review: SIGTERM before the first step, merge with a disabled degradation
rule and with failed thresholds, folders that are not runs, stages that take --rate,
--listen without a broadcast workload, and search over rate without --rate (open loop)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil
import pytest

from harness import cli
from harness import config as cfg
from harness.report import results
from tests import servers
from tests.busy import ran_ok, skip_if_busy_search

TIMEOUT_S = 60.0
SHORT = ["--duration", "0.5", "--warmup", "0.1", "--workers", "1", "--no-report"]


def harness(*args: str, cwd: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def two_runs(tmp_path: Path, port: int, conns: str, config: str = "") -> list[Path]:
    """The same sweep twice, one after the other, each into its own results folder."""
    extra = []
    if config:
        (tmp_path / "run.toml").write_text(config)
        extra = ["--config", str(tmp_path / "run.toml")]
    for i in range(2):
        r = harness("run", *extra, "--host", f"127.0.0.1:{port}", "--conns", conns, *SHORT,
                    "--results-dir", str(tmp_path / f"m{i}"), cwd=tmp_path)
        assert r.returncode in (0, 1), r.stderr
        assert "Traceback" not in r.stderr, r.stderr
    return [next((tmp_path / f"m{i}").iterdir()) for i in range(2)]


# ---------------------------------------------------------------------------- 1: SIGTERM


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


# ---------------------------------------------------------------------------- 2, 3: merge


def test_merge_with_the_p99_factor_rule_disabled(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        runs = two_runs(tmp_path, srv.port, "2,3", "[degradation]\np99_factor = 0.0\n")
    saved = results.read_run(runs[0])
    assert saved["config"]["degradation"]["p99_factor"] is None
    r = harness("merge", *map(str, runs), "--results-dir", str(tmp_path / "out"), "--json",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    doc = orjson.loads(r.stdout)
    assert [s["machines"] for s in doc["steps"]] == [2, 2]
    assert doc["degradation"]["rule"] != "p99"


def test_a_disabled_p99_factor_is_none_not_infinity() -> None:
    plan = cfg.build_plan(cfg.settings({"degradation": {"p99_factor": 0.0}}, {}))
    assert plan.degradation.p99_factor is None
    assert cfg.build_plan(cfg.settings({}, {})).degradation.p99_factor == 10.0


def test_merge_checks_thresholds_and_exits_1_when_one_fails(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        runs = two_runs(tmp_path, srv.port, "2", "[thresholds]\nmin_throughput = 1e9\n")
    text = harness("merge", *map(str, runs), "--results-dir", str(tmp_path / "a"), cwd=tmp_path)
    assert text.returncode == 1, text.stderr
    assert "THRESHOLD FAILED: min_throughput" in text.stdout, text.stdout
    js = harness("merge", *map(str, runs), "--results-dir", str(tmp_path / "b"), "--json",
                 cwd=tmp_path)
    assert js.returncode == 1, js.stderr
    failed = orjson.loads(js.stdout)["thresholds"]["failed"]
    assert len(failed) == 1 and failed[0].startswith("min_throughput"), failed
    (folder,) = (tmp_path / "b").iterdir()
    assert results.read_run(folder)["thresholds"]["failed"] == failed


def test_merge_rebuilds_only_known_threshold_fields() -> None:
    from harness import merge as merge_mod
    th = merge_mod.thresholds_from({"p99_ms": 5.0, "max_lost": None, "from_the_future": 1})
    assert th.p99_ms == 5.0 and th.max_lost is None


# ---------------------------------------------------------------------------- 4: not a run


@pytest.mark.parametrize("content", [b"{}", b"[1,2]", b'{"schema_version": 1, "steps": [1]}',
                                     b'{"schema_version": "1", "steps": []}', b"not json"])
def test_report_and_merge_refuse_folders_that_are_not_runs(tmp_path: Path,
                                                           content: bytes) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_bytes(content)
    rep = harness("report", "a", cwd=tmp_path)
    assert rep.returncode == 2, (rep.returncode, rep.stderr)
    assert "not a harness run folder" in one_error_line(rep)
    assert not (tmp_path / "a" / "report.html").exists()
    mer = harness("merge", "a", "b", "--results-dir", "out", cwd=tmp_path)
    assert mer.returncode == 2, (mer.returncode, mer.stderr)
    assert "not a harness run folder" in one_error_line(mer)
    assert not (tmp_path / "out").exists()


def test_a_folder_without_run_json_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    rep = harness("report", "empty", cwd=tmp_path)
    assert rep.returncode == 2 and "not a harness run folder" in one_error_line(rep)
    mer = harness("merge", "empty", "empty", cwd=tmp_path)
    assert mer.returncode == 2 and "not a harness run folder" in one_error_line(mer)


def test_read_run_says_why_a_document_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_bytes(b'{"schema_version": 1, "steps": {}}')
    with pytest.raises(ValueError, match="steps"):
        results.read_run(tmp_path)
    (tmp_path / "run.json").write_bytes(b'{"schema_version": 1, "steps": [{}]}')
    assert results.read_run(tmp_path)["steps"] == [{}]


# ---------------------------------------------------------------------------- 5: stages + --rate


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


def test_a_stage_rate_still_wins_over_the_run_rate() -> None:
    merged = cfg.settings({"scenarios": {"s": {"stages": [{"conns": 1, "duration": 1.0},
                                                          {"conns": 1, "duration": 1.0,
                                                           "rate": 5.0}]}}},
                          {"rate": 20.0}, "s")
    plan = cfg.build_plan(merged)
    assert [st.rate for st in plan.steps[0].stages] == [20.0, 5.0]
    assert plan.pacing.mode == "open"
    closed = cfg.build_plan(cfg.settings({"scenarios": {"s": {"stages": [{"conns": 1}]}}},
                                         {}, "s"))
    assert closed.pacing.mode == "closed" and closed.steps[0].stages[0].rate == 0.0


# ---------------------------------------------------------------------------- 6: --listen


def test_listen_with_an_echo_workload_is_a_usage_error(tmp_path: Path) -> None:
    with servers.closed_port() as closed:
        r = harness("run", "--host", f"127.0.0.1:{closed.port}", "--listen", "1",
                    "--conns", "1", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "--listen" in one_error_line(r)
    assert r.stdout == ""


# ---------------------------------------------------------------------------- 7: search


def test_search_over_rate_plans_the_open_loop() -> None:
    plan = cfg.build_plan(cfg.settings({}, {"host": "127.0.0.1:9", "conns": "4"}))
    assert plan.pacing.mode == "closed"
    searched = cli.search_plan(plan, "rate", 400.0)
    assert searched.pacing.mode == "open" and searched.pacing.rate == 100.0
    assert cli.search_plan(plan, "conns", 4.0) is plan


def test_search_over_rate_without_rate_measures_open_loop(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        r = harness("search", "--host", f"127.0.0.1:{srv.port}", "--lo", "200", "--hi", "400",
                    "--conns", "2", "--duration", "0.5", "--warmup", "0.1", "--workers", "1",
                    "--max-probes", "2", "--slo", "p99<1s", "--json", cwd=tmp_path)
    doc = orjson.loads(r.stdout)
    skip_if_busy_search(doc)
    assert r.returncode == 0, r.stderr
    assert [p["load"] for p in doc["probes"]] == [200.0, 400.0]
    for p in doc["probes"]:
        assert p["ok"], p
        # open-loop figures: service time from the actual send, behind-schedule sends counted
        assert p["service_p99_ms"] is not None and p["behind_schedule"] is not None, p
