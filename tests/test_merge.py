"""Merging runs from several client machines: exact, by histogram addition."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from harness.core.histogram import Histogram
from harness.report import results
from tests import servers
from tests.busy import ran_ok
from tests.support import harness


@pytest.mark.e2e
def test_two_concurrent_runs_merge_exactly(tmp_path: Path) -> None:
    with servers.start("delay", delay=0.005) as srv:
        args = ["run", "--host", f"127.0.0.1:{srv.port}", "--conns", "3,6", "--duration", "1",
                "--warmup", "0.1", "--workers", "1", "--no-report"]
        procs = [subprocess.Popen([sys.executable, "-m", "harness", *args, "--results-dir",
                                   str(tmp_path / f"m{i}"), "--name", f"m{i}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL) for i in range(2)]
        codes = [p.wait(timeout=60) for p in procs]
    runs = [next((tmp_path / f"m{i}").iterdir()) for i in range(2)]
    for code, run in zip(codes, runs, strict=True):
        assert ran_ok(code, orjson.loads((run / "run.json").read_bytes()))
    r = harness("merge", *map(str, runs), "--results-dir", str(tmp_path / "out"), "--json",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    merged = orjson.loads(r.stdout)
    docs = [orjson.loads((run / "run.json").read_bytes()) for run in runs]
    for k, step in enumerate(merged["steps"]):
        parts = [d["steps"][k] for d in docs]
        assert step["sent"] == sum(p["sent"] for p in parts)
        assert step["received"] == sum(p["received"] for p in parts)
        assert step["machines"] == 2
        # each machine opened its own connections: the merged step had them all
        assert step["conns"] == sum(p["conns"] for p in parts) == [6, 12][k]
        assert [m["conns"] for m in step["per_machine"]] == [p["conns"] for p in parts]
        assert [m["throughput_msgs_s"] for m in step["per_machine"]] == [
            p["throughput_msgs_s"] for p in parts]
        # the merged p99 is the p99 of the merged histogram, not an average of p99s
        whole = Histogram.from_dict(parts[0]["histograms"]["latency"])
        whole.merge(Histogram.from_dict(parts[1]["histograms"]["latency"]))
        assert step["latency_ms"]["p99"] == round(whole.percentile(99) / 1e6, 6)
        assert np.isclose(step["throughput_msgs_s"], sum(p["throughput_msgs_s"] for p in parts))
    assert merged["warnings"] == [] and "did not overlap" not in r.stderr
    assert merged["degradation"]["last_healthy"] in (6, 12, None)
    (out,) = (tmp_path / "out").iterdir()
    assert (out / "run.json").is_file() and (out / "steps.csv").is_file()
    assert (out / "series-step0.csv").read_text().count("\n") >= 2


@pytest.mark.e2e
def test_mismatched_runs_are_refused(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        for i, conns in enumerate(("2", "3")):
            assert harness("run", "--host", f"127.0.0.1:{srv.port}", "--conns", conns,
                           "--duration", "0.5", "--warmup", "0.1", "--no-report",
                           "--results-dir", str(tmp_path / f"m{i}"),
                           cwd=tmp_path).returncode in (0, 1, 4)  # 4: no step judged (busy)
    runs = [str(next((tmp_path / f"m{i}").iterdir())) for i in range(2)]
    r = harness("merge", *runs, "--results-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    assert "differ in conns" in r.stderr


@pytest.mark.e2e
def test_merge_refuses_a_name_or_results_folder_it_cannot_write(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        assert harness("run", "--host", f"127.0.0.1:{srv.port}", "--conns", "2", "--duration",
                       "0.3", "--warmup", "0", "--no-report", "--results-dir",
                       str(tmp_path / "m"), cwd=tmp_path).returncode in (0, 1, 4)
    (run,) = (tmp_path / "m").iterdir()
    for args, flag in ((["--name", "n" * 300], "--name"), (["--results-dir", "/proc/x"],
                                                            "--results-dir")):
        r = harness("merge", str(run), str(run), *args, cwd=tmp_path)
        err = r.stderr
        assert r.returncode == 2 and "Traceback" not in err, err
        assert err.startswith(f"harness: {flag}") and err.count("\n") == 1, err


SHORT = ["--duration", "0.5", "--warmup", "0.1", "--workers", "1", "--no-report"]


def two_runs(tmp_path: Path, port: int, conns: str, config: str = "") -> list[Path]:
    """The same sweep twice, one after the other, each into its own results folder."""
    extra = []
    if config:
        (tmp_path / "run.toml").write_text(config)
        extra = ["--config", str(tmp_path / "run.toml")]
    for i in range(2):
        r = harness("run", *extra, "--host", f"127.0.0.1:{port}", "--conns", conns, *SHORT,
                    "--results-dir", str(tmp_path / f"m{i}"), cwd=tmp_path)
        assert r.returncode in (0, 1, 4), r.stderr
        assert "Traceback" not in r.stderr, r.stderr
    return [next((tmp_path / f"m{i}").iterdir()) for i in range(2)]


@pytest.mark.e2e
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


@pytest.mark.e2e
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
    from harness.analysis import merge as merge_mod
    th = merge_mod.thresholds_from({"p99_ms": 5.0, "max_lost": None, "from_the_future": 1})
    assert th.p99_ms == 5.0 and th.max_lost is None


@pytest.mark.e2e
def test_runs_made_one_after_the_other_merge_with_a_warning(tmp_path: Path) -> None:
    with servers.start("echo") as srv:
        for i in range(2):
            assert harness("run", "--host", f"127.0.0.1:{srv.port}", "--conns", "2",
                           "--duration", "0.5", "--warmup", "0.1", "--workers", "1",
                           "--no-report", "--results-dir", str(tmp_path / f"m{i}"),
                           cwd=tmp_path).returncode in (0, 1, 4)
            time.sleep(1.1)  # so the second starts after the first ended, to the second
    runs = [str(next((tmp_path / f"m{i}").iterdir())) for i in range(2)]
    r = harness("merge", *runs, "--results-dir", str(tmp_path / "out"), cwd=tmp_path)
    err = r.stderr
    assert "harness: warning: the runs did not overlap in time (run1: " in err
    assert "they were not run at once, so the merged throughput is not a load the target " \
           "ever saw" in err
    out = r.stdout
    assert "conns @host rows: each client machine's part of a merged step" in out
    rows = [line.split() for line in out.splitlines()]
    assert [row[0] for row in rows if row and row[0] == "4"] == ["4"]  # 2 + 2 connections
    assert len([row for row in rows if row[:2] in (["2", "@run1"], ["2", "@run2"])]) == 2


# ---------------------------------------------------------------------------- checked metadata


def run_doc(**config: object) -> dict:
    """A minimal run.json with one step: enough for merge.check, no histograms needed to
    be refused before them."""
    base = {"framing": "len32", "size": 64, "size_spec": 64,
            "pacing": {"mode": "closed", "inflight": 1, "rate": 0.0, "think_s": 0.0}}
    return {"schema_version": 1, "workload": config.pop("workload", "echo"),
            "delivery": "echo", "config": base | config,
            "steps": [{"conns": 2, "histograms": {}}]}


def test_merge_refuses_runs_whose_framing_size_pacing_or_workload_differ() -> None:
    import pytest

    from harness.analysis.merge import MergeError, check
    closed = {"mode": "closed", "inflight": 1, "rate": 0.0, "think_s": 0.0}
    cases = [({"framing": "newline"}, "runs differ in framing: run1 len32, run2 newline"),
             ({"size": 128, "size_spec": 128}, "runs differ in size: run1 64, run2 128"),
             ({"size_spec": [64, 128]}, "runs differ in size: run1 64, run2 [64, 128]"),
             ({"pacing": closed | {"inflight": 4}}, "runs differ in pacing: run1 {mode=closed, "
              "inflight=1, rate=0.0, think_s=0.0}, run2 {mode=closed, inflight=4"),
             ({"workload": "mix.py"}, "runs differ in workload: run1 echo, run2 mix.py")]
    check([run_doc(), run_doc()])  # the same: accepted
    for change, message in cases:
        with pytest.raises(MergeError) as info:
            check([run_doc(), run_doc(**change)])
        assert str(info.value).startswith(message), (change, str(info.value))


def test_kinds_counted_only_when_they_occur_survive_a_merge() -> None:
    from harness.analysis import merge as merge_mod
    a = {"errors": {"timeout": 1, "http_404": 3}}
    b = {"errors": {"timeout": 2, "tls_cert": 1, "http_404": 2}}
    errors = merge_mod.merged_errors([a, b])
    assert errors["timeout"] == 3 and errors["http_404"] == 5 and errors["tls_cert"] == 1
    assert list(errors)[-2:] == ["http_404", "tls_cert"]


def test_a_merged_step_is_on_a_shared_core_when_any_machines_was_naming_the_worst() -> None:
    from harness.analysis.merge import worst_shared_core
    calm = {"core_shared": False, "shared_core": {"role": "worker0", "core": 0,
                                                  "others_pct": 4.0}}
    busy = {"core_shared": True, "shared_core": {"role": "worker1", "core": 1,
                                                 "others_pct": 61.0}}
    assert worst_shared_core([calm, busy]) == {
        "core_shared": True,
        "shared_core": {"role": "worker1", "core": 1, "others_pct": 61.0, "machine": 1}}
    assert worst_shared_core([calm, calm])["core_shared"] is False
    assert worst_shared_core([{}, {}]) == {}
