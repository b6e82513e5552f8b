"""harness run --live: the live page's stream read over a real socket during a real run
against the embedded echo server, its records checked against run.json; a second client
that joins mid-run gets the history; bad --live values are one line and exit 2."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.core.histogram import Histogram
from harness.report.live.feed import percentiles_ms
from tests.support import (
    harness_process as harness,  # the live server outlives the call in a process of its own
)
from tests.support import stop

RUN_TIMEOUT_S = 90
READ_TIMEOUT_S = 60


def start_live_run(tmp: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``harness run --live ... ARGS`` started; returns it and the page's URL (stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--live",
                             "--results-dir", str(tmp / "results"), "--json", *args],
                            cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "live page at " in line:
            return proc, line.split("live page at ", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    stop(proc)
    pytest.fail("harness run --live printed no live page address")


def read_events(url: str, until: str = "end") -> list[tuple[str, dict]]:
    """GET /events over a plain HTTP connection, parsed, until the ``until`` event (the
    read is bounded by READ_TIMEOUT_S)."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=READ_TIMEOUT_S)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    events: list[tuple[str, dict]] = []
    kind, deadline = None, time.monotonic() + READ_TIMEOUT_S
    while time.monotonic() < deadline:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind is not None:
            events.append((kind, json.loads(line[6:])))
            if kind == until:
                break
    conn.close()
    return events


def finish(proc: subprocess.Popen) -> tuple[int, dict, str]:
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    return proc.returncode, json.loads(out), err


def run_json(tmp: Path) -> dict:
    return json.loads(next((tmp / "results").glob("*/run.json")).read_text())


@pytest.mark.e2e
def test_stream_gives_each_second_merged_exactly_and_a_late_client_the_history(
        tmp_path: Path) -> None:
    proc, url = start_live_run(tmp_path, "--conns", "2,4", "--duration", "3", "--warmup",
                               "0.5", "--workers", "2", "--live-linger", "2", "--no-report")
    try:
        got: dict[str, list] = {}
        first = threading.Thread(target=lambda: got.setdefault("a", read_events(url)))
        first.start()
        late = read_events(url, until="second")  # wait until the run has seconds to show
        time.sleep(1.5)
        got["b"] = read_events(url)  # joins mid-run
        first.join(READ_TIMEOUT_S)
        code, summary, err = finish(proc)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert code in (0, 4), err
    assert late and late[0][0] == "meta"
    a, b = got["a"], got["b"]
    assert a == b, "a client that joins mid-run gets every event from the first"
    doc = run_json(tmp_path)
    finals = {d["step"]: d["records"] for k, d in a if k == "final"}
    assert sorted(finals) == [0, 1]
    for k, step in enumerate(doc["steps"]):
        recs = finals[k]
        assert sum(r["received"] for r in recs) == step["received"] > 0
        assert sum(r["sent"] for r in recs) == step["sent"]
        hists = [Histogram.from_dict(h) for h in step["second_histograms"]]
        assert [r["p"] for r in recs] == [percentiles_ms(h) for h in hists]
        cum = Histogram()
        for r, h in zip(recs, hists, strict=True):
            cum.merge(h)
            assert r["cum"] == percentiles_ms(cum)
        assert recs[-1]["cum"][4] >= max(r["p"][4] for r in recs if r["p"][4] is not None)
    live = [d for k, d in a if k == "second"]
    assert live, "no second was published while the run went on"
    for rec in live:  # a second published during the run is the one run.json has
        final = finals[rec["step"]][rec["s"]]
        assert (rec["sent"], rec["received"], rec["p"]) == \
            (final["sent"], final["received"], final["p"]), rec["s"]
        assert set(rec["cpu"]) <= {"w0", "w1"} and rec["open"] == doc["steps"][rec["step"]][
            "conns"]
    kinds = [k for k, _ in a]
    assert kinds[0] == "meta" and kinds[-2:] == ["verdict", "end"]
    assert [d["conns"] for k, d in a if k == "step"] == [2, 4]
    assert summary["steps"][0]["received"] == doc["steps"][0]["received"]


@pytest.mark.e2e
def test_the_page_is_read_only_and_served_on_loopback(tmp_path: Path) -> None:
    proc, url = start_live_run(tmp_path, "--conns", "2", "--duration", "1", "--warmup",
                               "0.2", "--live-linger", "3", "--no-report")
    try:
        assert url.startswith("http://127.0.0.1:")
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/")
        page = conn.getresponse().read().decode()
        assert 'id="harness-live"' in page and "EventSource" in page
        assert "http://" not in page and "https://" not in page
        for method, path, status in (("POST", "/events", 405), ("PUT", "/", 405),
                                     ("GET", "/etc/passwd", 404)):
            conn.request(method, path, body=b"x" if method != "GET" else None)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == status, (method, path)
        conn.close()
        code, _, err = finish(proc)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert code in (0, 4), err


@pytest.mark.e2e
@pytest.mark.parametrize(("args", "says"), [
    (("--live", "nonsense"), "--live: 'nonsense' is not HOST:PORT"),
    (("--live", "127.0.0.1:99999"), "is not HOST:PORT"),
    (("--live", "192.0.2.1:0"), "--live: cannot listen on 192.0.2.1:0"),
    (("--live-linger", "3"), "--live-linger needs --live"),
    (("--live", "--live-linger", "-1"), "--live-linger: '-1' is not a number of seconds"),
    (("--live", "--live-linger", "soon"), "--live-linger: 'soon' is not a number"),
])
def test_a_bad_live_value_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                                 says: str) -> None:
    proc = harness("run", "--conns", "1", "--duration", "0.5", "--results-dir",
                   str(tmp_path), *args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not list(tmp_path.glob("*/run.json")), "nothing ran"


@pytest.mark.e2e
def test_under_cluster_each_second_merges_every_machines_workers(tmp_path: Path) -> None:
    """Two agents: each second's record holds both machines' workers, and the seconds add
    up to run.json's merged totals; the step names each machine's part."""
    pytest.importorskip("distributed", reason="the cluster extra is not installed")
    from tests.test_cluster import two_agents
    with two_agents(tmp_path) as c:
        proc, url = start_live_run(tmp_path, "--cluster", c.address, "--conns", "4",
                                   "--duration", "3", "--warmup", "0.5", "--no-report")
        try:
            events = read_events(url)
            code, _, err = finish(proc)
        finally:
            if proc.poll() is None:
                stop(proc)
    assert code in (0, 4), err
    doc = run_json(tmp_path)
    (recs,) = [d["records"] for k, d in events if k == "final"]
    assert sum(r["received"] for r in recs) == doc["steps"][0]["received"] > 0
    hists = [Histogram.from_dict(h) for h in doc["steps"][0]["second_histograms"]]
    assert [r["p"] for r in recs] == [percentiles_ms(h) for h in hists]
    live = [d for k, d in events if k == "second"]
    assert live and max(len(r["cpu"]) for r in live) >= 2, "both machines' workers"
    (step,) = [d for k, d in events if k == "step"]
    assert sorted(m["machine"] for m in step["machines"]) == ["a1", "a2"]
