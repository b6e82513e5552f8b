"""Workload plug-ins, message mixes and test data, end to end on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from harness.wire import framing as fr
from harness.wire.batch import Outbound
from tests import servers
from tests.busy import ran_ok
from tests.support import harness, plan_for, run_plan
from workloads.base import Kind

README = Path(__file__).resolve().parents[1] / "workloads" / "README.md"


@pytest.mark.e2e
def test_the_readme_example_runs_end_to_end(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert 20 <= len(code.strip().splitlines()) <= 35  # "about 30 lines"
    mine = tmp_path / "greeter.py"
    mine.write_text(code)
    r = harness("run", "--workload", str(mine), "--conns", "3", "--messages", "300",
                "--inflight", "4", "--warmup", "0", "--workers", "1", "--json", "--no-report",
                "--results-dir", str(tmp_path), cwd=tmp_path)
    assert ran_ok(r.returncode, orjson.loads(r.stdout)), r.stderr
    doc = orjson.loads(r.stdout)
    assert doc["workload"] == "greeter"
    (s,) = doc["steps"]
    assert s["sent"] == 300 and s["received"] == 300 and s["lost"] == 0
    assert s["errors"]["protocol"] == 0  # the echoed greetings were skipped, not errors
    kinds = {k["kind"]: k for k in s["kinds"]}
    assert set(kinds) == {"short", "long"}
    assert kinds["short"]["sent"] > kinds["long"]["sent"] > 0


@pytest.mark.e2e
def test_mix_rows_add_up_to_the_total(tmp_path: Path) -> None:
    config = tmp_path / "mix.toml"
    config.write_text("""
[mix]
by = "message"
kinds = [
  { name = "short", weight = 0.8, size = 64 },
  { name = "large", weight = 0.2, size = "1024-4096" },
]
""")
    with servers.start("echo") as srv:
        r = harness("run", "--config", str(config), "--host", f"127.0.0.1:{srv.port}",
                    "--conns", "4", "--messages", "1000", "--inflight", "8", "--warmup", "0",
                    "--workers", "1", "--json", "--no-report", "--results-dir", str(tmp_path),
                    cwd=tmp_path)
    assert ran_ok(r.returncode, orjson.loads(r.stdout)), r.stderr
    (s,) = orjson.loads(r.stdout)["steps"]
    rows = s["kinds"]
    assert [k["kind"] for k in rows] == ["short", "large"]
    assert sum(k["sent"] for k in rows) == s["sent"] == 1000
    assert sum(k["received"] for k in rows) == s["received"] == 1000
    assert 650 <= rows[0]["sent"] <= 950  # 80% of 1000, seeded draw
    # the large kind's bytes show in the throughput: well above 1000 x 64 B
    assert s["throughput_mb_s"] * s["duration_s"] * 1e6 > 100_000


def test_mix_by_connection_gives_each_connection_one_kind() -> None:
    out = Outbound(fr.LEN32, [Kind("a", 0.5, 64), Kind("b", 0.5, 128)], [b"", b""], 1, 0, 1,
                   by_connection=True)
    gid = np.repeat(np.arange(10), 3)
    kinds = out.pick_kinds(gid)
    per_conn = kinds.reshape(10, 3)
    assert (per_conn == per_conn[:, :1]).all()  # one kind per connection
    assert set(kinds.tolist()) == {0, 1}


def _payloads(out: Outbound, n: int) -> list[bytes]:
    data, ends, _ = out.build(np.zeros(n, dtype=np.int64), 0, 123, 0)
    raw = bytes(data)
    starts = np.concatenate(([0], ends[:-1]))
    return [raw[a + out.over - out.framing.trailer:b - out.framing.trailer]
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def test_size_distributions_and_corpus_are_seeded() -> None:
    uniform = [Kind("u", 1.0, (100, 200))]
    a = _payloads(Outbound(fr.LEN32, uniform, [b"z" * 200], 1, 0, seed=7), 500)
    b = _payloads(Outbound(fr.LEN32, uniform, [b"z" * 200], 1, 0, seed=7), 500)
    c = _payloads(Outbound(fr.LEN32, uniform, [b"z" * 200], 1, 0, seed=8), 500)
    assert a == b and a != c  # same seed, same bytes
    sizes = [len(p) + 32 for p in a]
    assert min(sizes) >= 100 and max(sizes) <= 200 and len(set(sizes)) > 50
    listed = _payloads(Outbound(fr.LEN16, [Kind("l", 1.0, [40, 90])], [b"q" * 90], 1, 0, 1), 200)
    assert {len(p) + 30 for p in listed} == {40, 90}
    corpus = [b"hello world", b"", b"a much longer line of corpus text"]
    lines = _payloads(Outbound(fr.NEWLINE, uniform, [b""], 1, 0, 3, corpus=corpus), 300)
    assert set(lines) == set(corpus)


@pytest.mark.e2e
def test_corpus_payloads_travel_end_to_end(tmp_path: Path) -> None:
    corpus = tmp_path / "lines.txt"
    corpus.write_text("first line of text\nsecond, somewhat longer line of text\nthird\n")
    with servers.start("echo", framing="newline") as srv:
        r = harness("run", "--host", f"127.0.0.1:{srv.port}", "--framing", "newline",
                    "--corpus", str(corpus), "--conns", "4", "--messages", "300", "--inflight",
                    "4", "--warmup", "0", "--workers", "1", "--json", "--results-dir",
                    str(tmp_path / "r"), cwd=tmp_path)
    assert ran_ok(r.returncode, orjson.loads(r.stdout)), r.stderr
    doc = orjson.loads(r.stdout)
    (s,) = doc["steps"]
    assert s["received"] == 300 and s["lost"] == 0 and s["errors"]["protocol"] == 0
    assert doc["config"]["corpus"] == {"lines": 3}


@pytest.mark.e2e
def test_variable_sizes_with_length_prefixes_end_to_end() -> None:
    with servers.start("echo", framing="len16") as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", framing="len16", size="40-3000",
                                 messages="400", inflight=8, warmup=0.0))
    assert s["received"] == 400 and s["lost"] == 0 and sum(s["errors"].values()) == 0


@pytest.mark.e2e
def test_a_workload_that_breaks_the_interface_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from workloads.base import Workload\n"
                   "class X(Workload):\n    delivery = 'sideways'\nWORKLOAD = X\n")
    r = harness("run", "--workload", str(bad), "--conns", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert "bad.py" in r.stderr and "delivery" in r.stderr
