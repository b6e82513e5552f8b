"""Exports of a run (issue 13): .hlog files read back with the hdrhistogram package (and
Java's HistogramLogProcessor when it is installed), Prometheus/OpenMetrics text read with
prometheus_client's parsers, pushes to a local Pushgateway stand-in, ``harness history``,
and the HTML report's polish. Real runs of the CLI against its embedded echo server."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.core.histogram import LIMIT, Histogram, index_of
from harness.core.safe import printable
from harness.report import hlog, openmetrics, timecharts
from harness.report import html as report_html
from tests.support import free_port, harness

hdrh_log = pytest.importorskip("hdrh.log")
prom_parser = pytest.importorskip("prometheus_client.parser")
om_parser = pytest.importorskip("prometheus_client.openmetrics.parser")


# ---------------------------------------------------------------------------- fixtures


class Receiver:
    """A Pushgateway stand-in: an HTTP server on a free loopback port, in a thread, that
    keeps every request (method, path, content type, body) and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, str]] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
                n = int(self.headers.get("Content-Length", 0))
                received.append(("PUT", self.path, self.headers.get("Content-Type", ""),
                                 self.rfile.read(n).decode()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, list, subprocess.CompletedProcess]:
    """One open-loop run of two steps with a 1.5 s window (a partial last second), pushed
    to a local receiver: (run folder, requests received, the finished process)."""
    base = tmp_path_factory.mktemp("results")
    with Receiver() as rx:
        proc = harness("run", "--conns", "2,4", "--rate", "500", "--duration", "1.5",
                       "--warmup", "0.2", "--name", "pushed", "--results-dir", str(base),
                       "--pushgateway", rx.url, "--json", "--no-report", cwd=base, timeout=120)
    assert proc.returncode in (0, 1, 4), proc.stderr
    (folder,) = [p.parent for p in base.glob("*/run.json")]
    return folder, list(rx.requests), proc


@pytest.fixture(scope="module")
def run_folder(pushed: tuple) -> Path:
    return pushed[0]


def read_doc(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def hdr_counts(hdr: object) -> np.ndarray:
    return np.array(hdr.counts[:], dtype=np.int64)  # type: ignore[attr-defined]


def read_hlog(path: Path) -> list:
    """Every interval of a .hlog as the hdrhistogram package reads it."""
    from hdrh.histogram import HdrHistogram

    reader = hdrh_log.HistogramLogReader(str(path), HdrHistogram(1, LIMIT - 1, 2))
    out = []
    while (h := reader.get_next_interval_histogram()) is not None:
        out.append(h)
    reader.close()
    return out


# ---------------------------------------------------------------------------- .hlog


def test_a_histogram_crosses_to_hdrhistogram_count_for_count() -> None:
    from hdrh.histogram import HdrHistogram

    h = Histogram()
    rng = np.random.default_rng(1)
    h.record(rng.lognormal(12, 2, 50_000).astype(np.int64) + 1)
    h.record(np.arange(0, 300))
    back = HdrHistogram.decode(hlog.hdr_of(h).encode())
    assert np.array_equal(hdr_counts(back), h.counts)
    assert back.get_total_count() == h.total
    # and the same bucket holds each value in both layouts
    hdr = HdrHistogram(1, LIMIT - 1, 2)
    for v in (1, 255, 256, 257, 1000, 123_456, 10**9, LIMIT - 1):
        assert hdr.get_counts_array_index(v) == int(index_of(v))


def test_values_past_the_hdrhistogram_range_are_counted_in_a_comment() -> None:
    h = Histogram()
    h.record(np.array([1000, 2000, LIMIT + 5]))
    doc = {"workload": "echo", "environment": {"started_unix_s": 1e9},
           "steps": [{"conns": 1, "duration_s": 1.0, "histograms": {"latency": h.to_dict()},
                      "second_histograms": []}]}
    text = hlog.step_hlog(doc, 0)
    assert "#[harness: 1 latency values at or above 2^43 ns" in text
    assert "#[StartTime: 1000000000.000 (seconds since epoch)" in text
    assert hlog.tag_of("kind:a b,c") == "kind:a_b_c"


@pytest.mark.e2e
def test_each_steps_hlog_reads_back_as_the_runs_histograms(run_folder: Path) -> None:
    doc = read_doc(run_folder)
    for k, step in enumerate(doc["steps"]):
        path = run_folder / f"latency-step{k}.hlog"
        text = path.read_text()
        assert f"#[StartTime: {step['measure_started_unix_s']:.3f} (seconds since epoch)" in text
        assert f"#[BaseTime: {step['measure_started_unix_s']:.3f}" in text
        assert hlog.LEGEND in text.splitlines()
        intervals = read_hlog(path)
        untagged = [h for h in intervals if h.get_tag() is None]
        tags = {h.get_tag(): h for h in intervals if h.get_tag() is not None}
        latency = Histogram.from_dict(step["histograms"]["latency"])
        seconds = [Histogram.from_dict(d) for d in step["second_histograms"]]
        assert latency.total > 0 and len(untagged) == len(seconds) >= 2
        for h, sec in zip(untagged, seconds, strict=True):
            assert np.array_equal(hdr_counts(h), sec.counts)
        assert np.array_equal(sum(hdr_counts(h) for h in untagged), latency.counts)
        assert set(tags) == {"service", "connect"}  # open loop: service beside latency
        for tag, h in tags.items():
            assert np.array_equal(hdr_counts(h),
                                  Histogram.from_dict(step["histograms"][tag]).counts)


def hdrhistogram_jar() -> Path | None:
    found = sorted(Path.home().glob(".m2/repository/org/hdrhistogram/HdrHistogram/*/"
                                    "HdrHistogram-*.jar"))
    return found[-1] if found else None


@pytest.mark.e2e
def test_javas_histogram_log_processor_reads_the_hlog(run_folder: Path) -> None:
    jar, java = hdrhistogram_jar(), shutil.which("java")
    if jar is None or java is None:
        pytest.skip("java or the HdrHistogram jar (~/.m2) is not installed")
    doc = read_doc(run_folder)
    for tag, key in ((None, "latency"), ("service", "service")):
        args = [java, "-cp", str(jar), "org.HdrHistogram.HistogramLogProcessor", "-i",
                str(run_folder / "latency-step0.hlog")] + (["-tag", tag] if tag else [])
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        total = re.search(r"Total count\s*=\s*(\d+)", out.stdout)
        assert total and int(total.group(1)) == doc["steps"][0]["histograms"][key]["total"]


@pytest.mark.e2e
def test_export_hlog_rewrites_the_files_of_an_existing_folder(run_folder: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / run_folder.name
    shutil.copytree(run_folder, folder)
    for f in folder.glob("*.hlog"):
        f.unlink()
    proc = harness("export", "hlog", str(folder), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(folder / "latency-step0.hlog"),
                                   str(folder / "latency-step1.hlog")]
    assert (folder / "latency-step1.hlog").read_text() == \
        (run_folder / "latency-step1.hlog").read_text()
    (folder / "run.json").write_text("{broken")
    bad = harness("export", "hlog", str(folder), cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr


# ---------------------------------------------------------------------------- OpenMetrics


def bucket_counts(samples: list, labels: dict) -> np.ndarray:
    """Per-bucket counts from cumulative ``_bucket`` samples on harness's edges."""
    counts = np.zeros_like(Histogram().counts)
    below = 0
    for s in samples:
        if s.name.endswith("_bucket") and {k: s.labels[k] for k in labels} == labels \
                and s.labels["le"] != "+Inf":
            ns = round(float(s.labels["le"]) * 1e9)
            counts[int(index_of(ns))] += int(s.value) - below
            below = int(s.value)
    return counts


def families(text: str, parse: object = None) -> dict:
    parse = parse or prom_parser.text_string_to_metric_families
    return {f.name: f for f in parse(text)}  # type: ignore[operator]


@pytest.mark.e2e
def test_metrics_prom_parses_to_the_runs_counts_and_buckets(run_folder: Path) -> None:
    doc = read_doc(run_folder)
    fams = families((run_folder / "metrics.prom").read_text())
    assert fams["harness_sent_messages"].type == "counter"
    assert fams["harness_latency_seconds"].type == "histogram"
    for k, step in enumerate(doc["steps"]):
        labels = {"step": str(k), "conns": str(step["conns"])}

        def value(name: str, labels: dict = labels) -> float:
            (v,) = [s.value for s in fams[name].samples
                    if {x: s.labels.get(x) for x in labels} == labels]
            return v

        assert value("harness_sent_messages") == step["sent"]
        assert value("harness_received_messages") == step["received"]
        assert value("harness_throughput_messages_per_second") == step["throughput_msgs_s"]
        assert value("harness_errors", {**labels, "kind": "timeout"}) == \
            step["errors"]["timeout"]
        for key in ("latency", "service", "connect"):
            h = Histogram.from_dict(step["histograms"][key])
            samples = fams[f"harness_{key}_seconds"].samples
            assert np.array_equal(bucket_counts(samples, labels), h.counts)
            mine = [s for s in samples if {x: s.labels.get(x) for x in labels} == labels]
            (count,) = [s.value for s in mine if s.name.endswith("_count")]
            (inf,) = [s.value for s in mine if s.labels.get("le") == "+Inf"]
            assert count == inf == h.total
            (total,) = [s.value for s in mine if s.name.endswith("_sum")]
            assert total == pytest.approx(h.sum / 1e9)


@pytest.mark.e2e
def test_export_openmetrics_is_openmetrics_text(run_folder: Path) -> None:
    proc = harness("export", "openmetrics", str(run_folder), "--format", "openmetrics",
                   cwd=run_folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("# EOF\n")
    fams = families(proc.stdout, om_parser.text_string_to_metric_families)
    doc = read_doc(run_folder)
    sent = [s.value for s in fams["harness_sent_messages"].samples]
    assert sent == [s["sent"] for s in doc["steps"]]
    plain = harness("export", "openmetrics", str(run_folder), cwd=run_folder)
    assert plain.stdout == (run_folder / "metrics.prom").read_text()


def test_label_values_are_escaped() -> None:
    doc = {"workload": 'a"b\\c\nd', "steps": []}
    text = openmetrics.run_text(doc, "x")
    (info,) = families(text)["harness_run_info"].samples
    assert info.labels["workload"] == 'a"b\\c\nd'


def test_control_characters_in_kind_names_are_shown_not_written() -> None:
    """Issue 20 item 9: kind names with ESC, BEL and C1 bytes reached metrics.prom raw."""
    evil = "a\x1b]0;pwned\x07\x9b2J\u202eb"
    h = Histogram()
    h.record(np.array([1_000_000], dtype=np.int64))
    step = {"conns": 1, "sent": 1, "received": 1, "errors": {f"ws_close_{evil}": 1},
            "histograms": {f"kind:{evil}": h.to_dict()}}
    for om in (False, True):
        text = openmetrics.run_text({"workload": evil, "steps": [step]}, evil, om)
        raw = [c for c in text if c != "\n" and printable(c) != c]
        assert raw == [], raw
        fams = families(text, om_parser.text_string_to_metric_families if om else None)
        labels = [s.labels for f in fams.values() for s in f.samples]
        shown = printable(evil)
        assert any(d.get("kind") == shown for d in labels)
        assert any(d.get("kind") == f"ws_close_{shown}" for d in labels)
        assert any(d.get("run") == shown for d in labels)


# ---------------------------------------------------------------------------- Pushgateway


@pytest.mark.e2e
def test_the_run_is_pushed_after_each_step_and_at_the_end(pushed: tuple) -> None:
    folder, requests, proc = pushed
    assert "pushgateway" not in proc.stderr
    assert len(requests) == 3  # after step 0, after step 1, the whole run
    for method, path, ctype, _ in requests:
        assert (method, path) == ("PUT", "/metrics/job/harness/name/pushed")
        assert ctype.startswith("text/plain; version=0.0.4")
    steps_seen = [len(families(body)["harness_sent_messages"].samples)
                  for *_, body in requests]
    assert steps_seen == [1, 2, 2]
    doc = read_doc(folder)
    final = families(requests[-1][3])
    assert [s.value for s in final["harness_received_messages"].samples] == \
        [s["received"] for s in doc["steps"]]


@pytest.mark.e2e
def test_a_dead_pushgateway_is_one_warning_and_a_single_step_gets_no_load_curves(
        tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = harness("run", "--conns", "2", "--duration", "0.5", "--warmup", "0.1",
                   "--results-dir", str(tmp_path), "--pushgateway", url, cwd=tmp_path,
                   timeout=120)
    assert proc.returncode in (0, 1, 4), proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "pushgateway" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("harness: warning: pushgateway")
    assert "Traceback" not in proc.stderr
    (folder,) = [p.parent for p in tmp_path.glob("*/run.json")]
    page = (folder / "report.html").read_text()
    sweep = page[page.index('id="chart-sweep"'):page.index('id="chart-time"')]
    assert "<svg" not in sweep and "Curves against load need two steps or more" in sweep
    after = page[page.index('id="chart-time"'):page.index('id="chart-resources"')]
    assert after.count("<svg") == 2  # over time and the spectrum are still drawn


def test_a_bad_pushgateway_url_is_a_usage_error(tmp_path: Path) -> None:
    proc = harness("run", "--pushgateway", "ftp://x", "--conns", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "harness: --pushgateway: 'ftp://x' is not an http:// or " \
                                  "https:// URL"


# ---------------------------------------------------------------------------- history


def fake_run(src: Path, base: Path, folder: str, name: str, started: float,
             duration_s: float | None = None) -> None:
    dst = base / folder
    shutil.copytree(src, dst)
    doc = read_doc(dst)
    doc["config"]["name"] = name
    for st in doc["config"]["steps"] if duration_s else ():
        st["duration_s"] = duration_s  # a shortened run of the same plan
    doc["environment"]["started_unix_s"] = started
    doc["environment"]["started_utc"] = f"t{started:.0f}"
    (dst / "run.json").write_text(json.dumps(doc))


@pytest.mark.e2e
def test_history_lists_runs_newest_first_and_skips_a_corrupt_folder(run_folder: Path,
                                                                    tmp_path: Path) -> None:
    base = tmp_path / "results"
    base.mkdir()
    fake_run(run_folder, base, "a-old", "alpha", 1000.0)
    fake_run(run_folder, base, "c-new", "alpha", 3000.0)
    fake_run(run_folder, base, "b-mid", "alpha", 2000.0, duration_s=60.0)
    (base / "d-bad").mkdir()
    (base / "d-bad" / "run.json").write_text('{"schema_version": 1, "steps": [')
    proc = harness("history", str(base), "--json", "--html", str(tmp_path / "h.html"),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [Path(r["folder"]).name for r in rows] == ["c-new", "b-mid", "a-old"]
    doc = read_doc(run_folder)
    knee = [s for s in doc["steps"] if s["conns"] == doc["degradation"]["last_healthy"]]
    key = knee[0] if knee else doc["steps"][-1]
    assert rows[0]["p99_ms"] == key["latency_ms"]["p99"]
    assert rows[0]["throughput_msgs_s"] == key["throughput_msgs_s"]
    assert rows[0]["steps"] == 2 and rows[0]["workload"] == "echo"
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "d-bad" in err[0] and err[0].startswith("harness: warning:")
    assert "Traceback" not in proc.stderr
    assert rows[0]["plan"] == rows[2]["plan"] != rows[1]["plan"]
    page = (tmp_path / "h.html").read_text()
    assert page.count("<svg") == 1  # the plan run twice; the 60 s one, run once, in words
    assert f"alpha / echo (plan {rows[0]['plan']}: " in page
    assert f"alpha / echo (plan {rows[1]['plan']}: " in page
    assert "One run (t2000): p99" in page and "A trend needs two runs" in page
    table = harness("history", str(base), cwd=tmp_path)
    plans = [ln.split()[2] for ln in table.stdout.splitlines()[2:]]
    assert plans == [r["plan"] for r in rows]


def test_history_of_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    proc = harness("history", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_history_html_it_cannot_write_is_one_line_even_beside_a_skipped_run(
        tmp_path: Path) -> None:
    """The skipped run's warning came first, so exit 2 said two lines (tests/fuzz)."""
    (tmp_path / "results" / "bad").mkdir(parents=True)
    (tmp_path / "results" / "bad" / "run.json").write_text("{")
    proc = harness("history", "results", "--html", "nope/h.html", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("harness: --html: cannot write nope/h.html"), proc.stderr


# ---------------------------------------------------------------------------- report polish


def series_of(folder: Path, n: int) -> list:
    return [report_html.read_columns(folder / f"series-step{k}.csv") or {} for k in range(n)]


def lines_by_label(fig: object) -> dict:
    return {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines()}  # type: ignore


@pytest.mark.e2e
def test_the_partial_last_second_is_marked_not_drawn_as_a_collapse(run_folder: Path) -> None:
    doc = read_doc(run_folder)
    steps, series = doc["steps"], series_of(run_folder, 2)
    assert all(s["duration_s"] == 1.5 for s in steps)
    fig = timecharts.time_figure(steps, series, timecharts.timeline(steps, series, []))
    lines = lines_by_label(fig)
    received = lines["received/s"].get_ydata()
    full = [c["received"][i] for c in series for i, sec in enumerate(c["second"])
            if sec + 1 <= 1.5]
    assert list(received[np.isfinite(received)]) == full  # the half second is left out
    marked = lines["partial last second (scaled to /s)"].get_ydata()
    assert list(marked) == [c["received"][1] / 0.5 for c in series]
    sent = lines["sent/s"]
    assert np.isfinite(sent.get_ydata()).sum() == len(full)
    assert sent.get_linestyle() == "--" and sent.get_zorder() > lines["received/s"].get_zorder()


@pytest.mark.e2e
def test_stage_labels_are_horizontal_and_readable(run_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / run_folder.name
    shutil.copytree(run_folder, folder)
    doc = read_doc(folder)
    for s in doc["steps"]:
        s["stages"] = [{"start_s": 0.0, "label": "rampstage"},
                       {"start_s": 0.5, "label": "burststage"}]
    (folder / "run.json").write_text(json.dumps(doc))
    page = report_html.write_html(folder).read_text()
    texts = re.findall(r"<text [^>]*>\s*(?:rampstage|burststage)\s*</text>", page)
    assert len(texts) >= 4
    for t in texts:
        size = float(re.search(r"font-size: ([\d.]+)px", t).group(1))  # type: ignore[union-attr]
        assert size >= 9
        assert not re.search(r"rotate\(-?[1-9]", t)


@pytest.mark.e2e
def test_the_configuration_is_folded_under_the_command_line(run_folder: Path) -> None:
    page = report_html.write_html(run_folder).read_text()
    config = page[page.index("<h2>Configuration</h2>"):]
    command = config.index('<pre class="command">harness run --conns 2,4 --rate 500')
    details = config.index("<details><summary>Resolved configuration (")
    assert command < details
    assert "<th>pacing.rate</th>" in config[details:]
    assert "<th>pacing.rate</th>" not in config[:details]


@pytest.mark.e2e
def test_a_merged_run_gets_its_hlog_and_metrics_too(run_folder: Path, tmp_path: Path) -> None:
    proc = harness("merge", str(run_folder), str(run_folder), "--results-dir",
                   str(tmp_path), "--no-report", cwd=tmp_path)
    assert proc.returncode in (0, 1, 4), proc.stderr
    (folder,) = [p.parent for p in tmp_path.glob("*/run.json")]
    doc = read_doc(folder)
    for k, step in enumerate(doc["steps"]):
        untagged = [h for h in read_hlog(folder / f"latency-step{k}.hlog")
                    if h.get_tag() is None]
        latency = Histogram.from_dict(step["histograms"]["latency"])
        assert latency.total == 2 * read_doc(run_folder)["steps"][k]["histograms"][
            "latency"]["total"]
        assert np.array_equal(sum(hdr_counts(h) for h in untagged), latency.counts)
    fams = families((folder / "metrics.prom").read_text())
    assert [s.value for s in fams["harness_sent_messages"].samples] == \
        [s["sent"] for s in doc["steps"]]
