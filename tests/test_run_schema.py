"""read_run checks the whole run.json once (harness.report.schema): a mangled field is one
line naming it, exit 2, for every command that reads a run (issue 20, item 7: 146 of its
158 tracebacks came from mangled run.json files)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from harness.core.histogram import Histogram
from harness.report import results, schema
from tests.support import harness


def hist(n: int = 100) -> dict:
    h = Histogram()
    h.record(np.arange(1, n + 1, dtype=np.int64) * 10_000)
    return h.to_dict()


def run_doc() -> dict:
    """A run.json as harness writes it, trimmed to the fields the commands read."""
    step = {"conns": 2, "connected": 2, "duration_s": 1.0, "sent": 100, "received": 100,
            "throughput_msgs_s": 100.0, "throughput_mb_s": 0.0064,
            "latency_ms": {"p50": 0.5, "p99": 0.99, "max": 1.0, "mean": None},
            "connect_ms": {"p50": 0.1, "p99": 0.2, "max": 0.2},
            "errors": {"timeout": 0, "reset": 0}, "lost": 0, "duplicates": 0, "late": 0,
            "client_cpu_pct": 40.0, "client_cpu_pct_per_worker": [40.0],
            "client_bound": False, "partial": False, "measure_started_unix_s": 1.7e9,
            "kinds": [{"name": "a", "sent": 50, "errors": {}}],
            "histograms": {"latency": hist(), "connect": hist(2)},
            "second_histograms": [hist()]}
    return {"schema_version": 1, "partial": False, "target": "127.0.0.1:1",
            "workload": "echo", "argv": ["run"], "warnings": [],
            "config": {"framing": "len32", "name": "run",
                       "pacing": {"mode": "closed", "inflight": 1, "rate": 0.0},
                       "thresholds": {"p99_ms": None, "max_lost": 0}},
            "environment": {"host": "h", "started_unix_s": 1.7e9, "cores": 2},
            "steps": [step],
            "degradation": {"degraded_at": None, "last_healthy": 2, "rule": None,
                            "judged": 1},
            "thresholds": {"failed": []}}


def put(doc: dict, path: tuple, value: Any) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


S = ("steps", 0)
LAT = (*S, "histograms", "latency")
MANGLED = [  # (path, value, the field named, what the line says)
    ((*S, "errors"), None, "steps[0].errors", "an object of counts, got null"),
    ((*S, "errors", "timeout"), 1e308, "steps[0].errors.timeout", "a count"),
    ((*S, "errors", "timeout"), -1, "steps[0].errors.timeout", "a count"),
    ((*LAT, "counts", 0), 2**64 - 1, "steps[0].histograms.latency.counts[0]", "int64"),
    ((*LAT, "counts", 0), 2**53 + 1, "steps[0].histograms.latency.counts[0]", "a count"),
    ((*LAT, "idx", 0), 99_999, "steps[0].histograms.latency.idx[0]", "a bucket"),
    ((*LAT, "idx"), [], "steps[0].histograms.latency", "idx has 0 buckets"),
    ((*LAT, "total"), 7, "steps[0].histograms.latency.total", "not the sum"),
    ((*LAT, "layout"), [1, 2], "steps[0].histograms.latency.layout", "harness's layout"),
    ((*S, "second_histograms", 0, "sum"), "x", "steps[0].second_histograms[0].sum", "a sum"),
    ((*S, "latency_ms", "p99"), "x", "steps[0].latency_ms.p99", "a number, got 'x'"),
    ((*S, "latency_ms"), [], "steps[0].latency_ms", "an object of figures"),
    ((*S, "sent"), True, "steps[0].sent", "a count"),
    ((*S, "throughput_msgs_s"), None, "steps[0].throughput_msgs_s", "a number"),
    ((*S, "client_bound"), "no", "steps[0].client_bound", "true or false"),
    ((*S, "measure_started_unix_s"), 1e300, "steps[0].measure_started_unix_s", "Unix time"),
    ((*S, "kinds", 0, "name"), 5, "steps[0].kinds[0].name", "a string"),
    ((*S, "kinds", 0, "errors"), None, "steps[0].kinds[0].errors", "an object of counts"),
    (("steps",), {}, "steps", "an array"),
    (("steps", 0), 3, "steps[0]", "an object"),
    (("config", "pacing", "inflight"), -1, "config.pacing.inflight", "a count"),
    (("config", "thresholds", "p99_ms"), "1ms", "config.thresholds.p99_ms", "a number"),
    (("config", "framing"), None, "config.framing", "a string"),
    (("environment", "started_unix_s"), 1e300, "environment.started_unix_s", "Unix time"),
    (("degradation", "last_healthy"), "x", "degradation.last_healthy", "a number"),
    (("thresholds", "failed"), [1], "thresholds.failed[0]", "a string"),
    (("warnings",), "x", "warnings", "an array"),
    (("partial",), 0, "partial", "true or false"),
    (("extra",), {"deep": [2**63]}, "extra.deep[0]", "int64"),
]


def test_a_run_as_harness_writes_it_passes() -> None:
    assert schema.problem(run_doc()) is None
    assert schema.problem(put(run_doc(), ("steps",), [{}])) is None  # absent: not checked


@pytest.mark.parametrize("path, value, field, says", MANGLED,
                         ids=[f"{m[2]}={m[1]!r}"[:60] for m in MANGLED])
def test_a_mangled_field_is_named_in_one_line(tmp_path: Path, path: tuple, value: Any,
                                              field: str, says: str) -> None:
    (tmp_path / "run.json").write_bytes(orjson.dumps(put(run_doc(), path, value)))
    with pytest.raises(ValueError) as err:
        results.read_run(tmp_path)
    line = str(err.value)
    assert f"run.json: {field}: " in line and says in line, line
    assert "\n" not in line and len(line) < 300 + len(str(tmp_path)), line


def test_nesting_is_bounded() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    assert "nested more than" in (schema.problem(put(run_doc(), ("x",), deep)) or "")


def test_a_long_run_is_checked_in_about_a_second() -> None:
    doc = run_doc()
    step = doc["steps"][0]
    step["second_histograms"] = [hist(300) for _ in range(3600)]  # an hour, second by second
    t0 = time.perf_counter()
    assert schema.problem(doc) is None
    assert time.perf_counter() - t0 < 3


# ---------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("runs")
    r = harness("run", "--conns", "2", "--duration", "0.2", "--warmup", "0.1", "--workers",
                "1", "--no-report", "--results-dir", "results", "--name", "good", cwd=cwd)
    assert r.returncode in (0, 1, 4), r.stderr
    return next((cwd / "results").iterdir())


def mangled(good: Path, where: Path, path: tuple, value: Any) -> Path:
    doc = orjson.loads((good / "run.json").read_bytes())
    where.mkdir(parents=True)
    (where / "run.json").write_bytes(orjson.dumps(put(doc, path, value)))
    return where


CASES = [  # the cases: command, the field mangled, its value
    (("merge", "{bad}", "{bad}", "--results-dir", "out"), (*S, "errors"), None),
    (("compare", "{good}", "{bad}"), (*S, "errors", "timeout"), 1e308),
    (("report", "{bad}"), (*LAT, "counts", 0), 2**64 - 1),
    (("export", "openmetrics", "{bad}"), (*LAT, "counts", 0), 2**64 - 1),
    (("export", "hlog", "{bad}"), (*S, "measure_started_unix_s"), 1e300),
    (("compare", "{bad}", "{good}"), (*LAT, "counts", 0), 2**64 - 1),
    (("run", "--baseline", "{bad}", "--conns", "1"), (*S, "latency_ms", "p99"), "x"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("argv, path, value", CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_every_command_refuses_a_mangled_run_in_one_line(good: Path, tmp_path: Path,
                                                         argv: tuple, path: tuple,
                                                         value: Any) -> None:
    bad = mangled(good, tmp_path / "bad", path, value)
    args = [a.format(good=good, bad=bad) for a in argv]
    r = harness(*args, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.json: steps[0]." in lines[0], r.stderr


@pytest.mark.e2e
def test_history_skips_a_mangled_run_with_one_warning(good: Path, tmp_path: Path) -> None:
    mangled(good, tmp_path / "results" / "bad", (*S, "latency_ms", "p99"), "x")
    r = harness("history", "results", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "steps[0].latency_ms.p99: expected a number, got 'x'" in r.stderr, r.stderr


def test_config_keeps_websockets_settings_at_its_top_level() -> None:
    """WebSocket's settings live in Plan.options (harness.protocols.ws.settings.WsPlan), yet
    run.json's config keeps its seven keys, after tls, as when they were Plan fields."""
    from harness.report.document import plan_dict
    from tests.support import plan_for
    keys = ["ws_subprotocol", "headers", "ping_interval_s", "ws_text", "ws_match",
            "reconnect", "ws_compress"]
    text = '{"type": "m", "stamp": "{stamp}"}'
    ws = plan_dict(plan_for("ws://127.0.0.1:1/", ws_subprotocol="chat", header="A: 1",
                            ping_interval=2.0, ws_text=text, ws_match="type=m",
                            reconnect=True, ws_compress=True, size="100"))
    at = list(ws).index("tls") + 1
    assert list(ws)[at:at + 7] == keys and "options" in ws
    assert orjson.loads(orjson.dumps([ws[k] for k in keys])) == [
        "chat", [["A", "1"]], 2.0, text, ["type", "m"], True, True]
    tcp = plan_dict(plan_for("127.0.0.1:1"))
    assert [tcp[k] for k in keys] == ["", (), 0.0, "", None, False, False]
