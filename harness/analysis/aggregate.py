"""Pure functions: merge worker results, take percentiles once: a step's figures.

Inputs are plain values (``WorkerResult`` lists, histograms, dicts); nothing here touches a
socket or a file. Latency figures come out in ms, throughput in msgs/s and MB/s (10^6 B).
Percentiles are taken only from merged histograms. Judging the sweep is
harness.analysis.judge's; whether the client or the machine was the bottleneck,
harness.analysis.bottleneck's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.analysis.bottleneck import client_bound_rule
from harness.analysis.diagnosis import escape_bytes
from harness.analysis.diagnosis import no_reply_diagnosis as no_reply_diagnosis  # re-exported
from harness.analysis.diagnosis import unescape_bytes as unescape_bytes  # re-exported
from harness.analysis.fanout import fanout_figures
from harness.analysis.ramp import ramp_figures
from harness.analysis.storm import storm_figures
from harness.analysis.summary import StepSummary, connect_ms, handshake_ms, latency_ms, ms
from harness.analysis.trends import recovery_time, soak_verdict
from harness.core.histogram import Histogram, merge_all
from harness.core.plan import Step
from harness.core.result import ERROR_KINDS, WorkerResult
from harness.core.units import SEC


@dataclass(frozen=True, slots=True)
class StepFigures:
    """A step's summary (the documented JSON keys) plus what run.json and CSVs need."""

    summary: StepSummary
    histograms: dict[str, Histogram]
    series: dict[str, list]
    second_hists: list[Histogram]  # latency per second of the window, merged


SERIES_COUNTS = ("sent", "received", "errors")


def combine_series(columns: list[dict], seconds: list[list[Histogram]]
                   ) -> tuple[dict[str, list], list[Histogram]]:
    """Per-second counts added across parts (workers, or machines), and p99 per second from
    the per-second histograms merged across parts. Parts are aligned on their window start."""
    length = max([len(c.get("sent", ())) for c in columns] + [len(h) for h in seconds] + [0])
    out: dict[str, list] = {"second": list(range(length))}
    for name in SERIES_COUNTS:
        total = np.zeros(length, dtype=np.int64)
        for c in columns:
            col = np.asarray(c.get(name, ()), dtype=np.int64)
            total[: len(col)] += col
        out[name] = total.tolist()
    merged = [merge_all([h[sec] for h in seconds if sec < len(h)]) for sec in range(length)]
    out["p99_ms"] = [ms(h.percentile(99)) if len(h) else None for h in merged]
    return out, merged


def merge_series(results: list[WorkerResult]) -> tuple[dict[str, list], list[Histogram]]:
    """Per-second sums across workers, and p99 per second from merged histograms."""
    return combine_series([r.series for r in results], [r.sec_hists for r in results])


def step_figures(step: Step, results: list[WorkerResult], receivers: np.ndarray,
                 delivery: str, kind_names: list[str], open_loop: bool) -> StepFigures:
    """A step's figures from its workers' results: counts added, histograms merged, then
    percentiles; the parts a step has (open loop, a mix, stages, broadcast) beside them."""
    lat = merge_all([r.latency for r in results])
    con = merge_all([r.connect for r in results])
    hists = {"latency": lat, "connect": con}
    parts: dict = {}
    if open_loop:
        svc = merge_all([r.service for r in results])
        parts.update(service_ms=latency_ms(svc), behind_schedule=sum(r.behind for r in results))
        hists["service"] = svc
    hs = merge_all([r.handshake for r in results])  # a TLS step: handshakes, or TLS errors
    reasons = {k: v for r in reversed(results) for k, v in r.tls_reasons.items()}
    if len(hs) or any(k.startswith("tls_") and n for r in results for k, n in r.errors.items()):
        hists["handshake"] = hs
        parts.update(handshake_ms=handshake_ms(hs), handshakes=len(hs),
                     tls_reasons=reasons or None)
    bodies = {k: escape_bytes(v) for r in reversed(results) for k, v in r.failed_bodies.items()}
    if bodies:  # [[users]] checks and captures: the first failing response per kind
        parts["failed_bodies"] = dict(sorted(bodies.items()))
    if any(r.status for r in results):
        parts.update(status_counts([{str(c): n for c, n in r.status.items()} for r in results]))
    rec = merge_all([r.reconnect for r in results])
    if len(rec):  # ws --reconnect: from losing a connection to its handshake done again
        parts["reconnect_ms"], hists["reconnect"] = connect_ms(rec), rec
    parts.update(_storms(results))
    for group in sorted({g for r in results for g in r.tallies}):  # a protocol's own counts
        packed = [r.tallies[group] for r in results if group in r.tallies]
        parts[group] = {k: sum(p.get(k, 0) for p in packed) for k in packed[0]}
    parts.update(protocol_extras(results))
    if len(kind_names) > 1:
        parts["kinds"], kh = _kinds(results, kind_names)
        hists.update(kh)
    series, second_hists = merge_series(results)
    if step.stages:
        parts["stages"], parts["recovery"] = stage_figures(step, series, second_hists)
    if delivery == "broadcast":
        fan, hists["fanout"] = fanout_figures(step, results, receivers,
                                              sum(r.sent for r in results))
        parts.update(lost=fan.pop("lost"), duplicates=fan.pop("duplicates"), fanout=fan)
    summary = replace(_counts(step, results, open_loop, lat, con), **parts)
    return StepFigures(summary, hists, series, second_hists)


def protocol_extras(results: list[WorkerResult]) -> dict[str, Any]:
    """A protocol's own latencies (WorkerResult.extra), merged by name: the step's
    ``extras`` part with NAME_ms (p50 ... max, mean) and NAMEs (how many were recorded), or
    nothing."""
    out: dict[str, Any] = {}
    for name in sorted({n for r in results for n in r.extra}):
        h = merge_all([r.extra[name] for r in results if name in r.extra])
        out[f"{name}s"], out[f"{name}_ms"] = len(h), latency_ms(h)
    return {"extras": out} if out else {}


def _storms(results: list[WorkerResult]) -> dict[str, Any]:
    """The connect ramp (rate and latency per second, harness.analysis.ramp) and, with ws
    --reconnect, a reconnect storm's recovery (harness.analysis.storm), when the step has them."""
    parts: dict[str, Any] = {}
    episodes = [r.episodes for r in results if r.episodes is not None]
    if episodes:
        parts["storm"] = storm_figures(episodes)
    ramps = [r.ramp for r in results if r.ramp is not None]
    if ramps:
        parts["ramp"] = ramp_figures(ramps, _connect_failures(results))
    return parts


def _connect_failures(results: list[WorkerResult]) -> dict[str, int]:
    """Failed connects by kind (connect_refused, connect_timeout, connect_no_port, ...)."""
    out: dict[str, int] = {}
    for r in results:
        for k, n in r.errors.items():
            if k.startswith("connect_") and n:
                out[k] = out.get(k, 0) + n
    return out


def status_counts(counts: list[dict[str, int]]) -> dict[str, dict[str, int]]:
    """HTTP responses per status code (summed, in code order) and per class (``2xx``)."""
    status: dict[str, int] = {}
    for c in counts:
        for code, n in c.items():
            status[code] = status.get(code, 0) + n
    status = dict(sorted(status.items()))
    classes: dict[str, int] = {}
    for code, n in status.items():
        classes[f"{code[0]}xx"] = classes.get(f"{code[0]}xx", 0) + n
    return {"status": status, "status_classes": classes}


def _counts(step: Step, results: list[WorkerResult], open_loop: bool, lat: Histogram,
            con: Histogram) -> StepSummary:
    """The figures every step has: counts, throughput, latency, errors, client CPU."""
    errors = dict.fromkeys(ERROR_KINDS, 0)
    for r in results:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    sent = sum(r.sent for r in results)
    received = sum(r.received for r in results)
    duration = _duration_s(results, step.duration_s is None)
    cpu = [100.0 * r.cpu_s / r.wall_s for r in results if r.wall_s > 0]
    wait = [100.0 * r.wait_s / r.wall_s for r in results if r.wall_s > 0]
    client_cpu = round(max(cpu), 1) if cpu else 0.0
    bound = client_bound_rule(client_cpu, sum(r.behind for r in results), sent, open_loop,
                              _busiest(cpu, wait))
    unparsed = next((r.unparsed for r in results if r.unparsed), b"")
    return StepSummary(
        conns=step.conns, connected=sum(r.connected for r in results),
        duration_s=round(duration, 6), sent=sent, received=received,
        throughput_msgs_s=round(received / duration, 3) if duration > 0 else 0.0,
        throughput_mb_s=(round(sum(r.bytes_received for r in results) / duration / 1e6, 6)
                         if duration > 0 else 0.0),
        latency_ms=latency_ms(lat), connect_ms=connect_ms(con), errors=errors,
        lost=sum(r.lost for r in results), duplicates=sum(r.duplicates for r in results),
        late=sum(r.late for r in results), client_cpu_pct=client_cpu,
        client_cpu_pct_per_worker=[round(c, 1) for c in cpu], client_bound=bound is not None,
        client_wait_pct=round(max(wait), 1) if wait else None,
        partial=any(r.partial for r in results), sent_all=sum(r.sent_all for r in results),
        replies=sum(r.replies for r in results),
        reconnects=sum(r.reconnects for r in results),
        conns_lost=sum(r.conns_lost for r in results),
        client_bound_rule=bound[0] if bound else None,
        client_bound_detail=bound[1] if bound else None,
        first_unparsed=escape_bytes(unparsed) if unparsed else None,
        messages=step.messages, rate=step.rate or None)


def _busiest(cpu: list[float], wait: list[float]) -> tuple[float, float]:
    """(CPU %, run-queue wait %) of the worker whose sum of the two is the largest."""
    pairs = list(zip(cpu, wait, strict=False))
    return max(pairs, key=sum) if pairs else (0.0, 0.0)


def stage_figures(step: Step, series: dict, second_hists: list[Histogram]
                  ) -> tuple[list[dict], dict | None]:
    """One row per stage (start s into the window, its own sent, received, msgs/s, errors
    and latency from the seconds it covers), and for a spike (a stage heavier than both
    the first and the last) the recovery time after it, from the per-second series."""
    stages: list[dict[str, Any]] = []
    start = 0.0
    for st in step.stages:
        row = {"start_s": start, "duration_s": st.duration_s, "conns": st.conns,
               "rate": st.rate, "label": st.label or f"{st.conns} conns"}
        row.update(_stage_counts(series, second_hists, start, start + st.duration_s))
        stages.append(row)
        start += st.duration_s
    load = [st.conns * max(st.rate, 1.0) for st in step.stages]
    peak = int(np.argmax(load))
    if len(load) < 3 or not (load[peak] > load[0] and load[peak] > load[-1]):
        return stages, None
    spike = stages[peak]
    rec = recovery_time(series["second"], series["p99_ms"], series["received"],
                        spike["start_s"], spike["start_s"] + spike["duration_s"])
    rec["spike_stage"] = peak
    return stages, rec


def _stage_counts(series: dict, second_hists: list[Histogram], start: float,
                  end: float) -> dict:
    """A stage's figures from the per-second series: the whole seconds in [start, end)."""
    a, b = int(np.ceil(start)), int(np.ceil(end))
    got = sum(series["received"][a:b])
    secs = max(min(b, len(series["received"])) - a, 0)
    lat = merge_all(second_hists[a:b])
    return {"sent": sum(series["sent"][a:b]), "received": got,
            "errors": sum(series["errors"][a:b]),
            "throughput_msgs_s": round(got / secs, 3) if secs else 0.0,
            "latency_ms": latency_ms(lat)}


TREND_MIN_SECONDS = 10  # shorter steps get no trend at all
TREND_JUDGE_SECONDS = 60  # "stable" and slopes per hour need a step at least this long
TOO_SHORT = "too short to judge a trend"


def trend_figures(series: dict, monitor_rows: list[dict]) -> dict | None:
    """The p99 trend over a step's seconds, and the server's memory trend when it was
    watched (rows from the resource monitor, role "server"). None for steps under
    TREND_MIN_SECONDS. A step under TREND_JUDGE_SECONDS is never called "stable" (a few
    seconds say nothing of an hour): its verdict is TOO_SHORT unless a clear rise was
    seen (the same test as for a long step). ``seconds`` and ``judge_s`` say which."""
    seconds = len(series.get("second", ()))
    if seconds < TREND_MIN_SECONDS:
        return None
    rows = [r for r in monitor_rows if r.get("role") == "server" and r.get("rss_bytes")]
    rss_s = [float(r["second"]) for r in rows] or None
    rss = [float(r["rss_bytes"]) for r in rows] or None
    v = soak_verdict([float(x) for x in series["second"]], series["p99_ms"], rss_s, rss)
    out = {k: v[k] for k in ("verdict", "p99_growing", "memory_growing", "p99_trend",
                             "memory_trend")}
    if seconds < TREND_JUDGE_SECONDS and out["verdict"] == "stable":
        out["verdict"] = TOO_SHORT
    return dict(out, seconds=seconds, judge_s=TREND_JUDGE_SECONDS)


def _duration_s(results: list[WorkerResult], until_last_reply: bool) -> float:
    """The measure window in s; a ``--messages`` step lasts until its last reply."""
    start = min((r.window_start for r in results if r.window_start), default=0)
    end = max((r.window_end for r in results), default=0)
    if until_last_reply:
        end = max([end] + [r.last_recv for r in results])
    return max(end - start, 0) / SEC if start else 0.0


def _kinds(results: list[WorkerResult], names: list[str]) -> tuple[list[dict], dict]:
    rows, hists = [], {}
    for k, name in enumerate(names):
        h = merge_all([r.kinds[k] for r in results])
        hists[f"kind:{name}"] = h
        rows.append({"kind": name, "sent": sum(r.kind_sent[k] for r in results),
                     "received": len(h), "latency_ms": latency_ms(h)})
    return rows, hists
