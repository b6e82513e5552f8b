"""Pure functions: merge worker results, take percentiles once, judge the sweep.

Inputs are plain values (``WorkerResult`` lists, histograms, dicts); nothing here touches a
socket or a file. Latency figures come out in ms, throughput in msgs/s and MB/s (10^6 B).
Percentiles are taken only from merged histograms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness import protocols
from harness.analysis.diagnosis import escape_bytes
from harness.analysis.diagnosis import no_reply_diagnosis as no_reply_diagnosis  # re-exported
from harness.analysis.diagnosis import unescape_bytes as unescape_bytes  # re-exported
from harness.analysis.fanout import fanout_figures
from harness.analysis.ramp import ramp_figures
from harness.analysis.storm import storm_figures
from harness.analysis.summary import StepSummary, connect_ms, handshake_ms, latency_ms, ms
from harness.analysis.trends import recovery_time, soak_verdict
from harness.core.histogram import Histogram, merge_all
from harness.core.plan import Degradation, Step, Thresholds
from harness.core.result import ERROR_KINDS, WorkerResult
from harness.core.units import SEC

CLIENT_BOUND_CPU = 90.0  # a worker this busy (% of one core) measures itself
BEHIND_FRACTION = 0.01  # open loop: this share of sends over 5 ms late => client-bound
CLIENT_BUSY_PCT = 80.0  # a worker running or waiting for its core this % of the time
RUN_QUEUE_PCT = 10.0  # a worker runnable but waiting for its core this % of the time
FAILED_REPLIES = tuple(p for s in protocols.REGISTRY.values() for p in s.failed_replies)
SHARED_CORE_PCT = 30.0  # default of --shared-core-pct: others took this much of a worker's
# (or the server's) core


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
    packed = [r.ws_compress for r in results if r.ws_compress]
    if packed:  # ws --ws-compress: bytes before compression and on the wire, both ways
        parts["ws_compress"] = {k: sum(p[k] for p in packed) for k in packed[0]}
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


def client_bound_rule(client_cpu: float, behind: int, sent: int, open_loop: bool,
                      demand: tuple[float, float] = (0.0, 0.0)) -> tuple[str, str] | None:
    """Which client-bound rule fired, and its figure; None when the client kept up.

    ``demand``: the busiest worker's CPU % and run-queue wait % (runnable, but waiting for
    its core) of the step's wall time. The rules, in order:

    - ``client_cpu``: a worker used >= CLIENT_BOUND_CPU (90%) of its core;
    - ``client_busy``: CPU + run-queue wait >= CLIENT_BUSY_PCT (80%): the worker was idle,
      waiting on the server, less than a fifth of the time, so the load it offered was
      near its own ceiling (a worker at 83-89% CPU no longer passes or fails by luck);
    - ``run_queue``: run-queue wait >= RUN_QUEUE_PCT (10%): replies sat unread while the
      worker waited for its core, and their latency counts that wait;
    - ``behind_schedule`` (open loop): more than BEHIND_FRACTION (1%) of sends went out over
      5 ms behind their schedule: the schedule slipped.
    """
    if client_cpu >= CLIENT_BOUND_CPU:
        return "client_cpu", (f"a worker used {client_cpu:.0f}% of its core "
                              f"(>= {CLIENT_BOUND_CPU:.0f}%)")
    cpu, wait = demand
    if cpu + wait >= CLIENT_BUSY_PCT:
        return "client_busy", (f"a worker ran {cpu:.0f}% and waited for its core {wait:.0f}% "
                               f"of the time (together >= {CLIENT_BUSY_PCT:.0f}%: idle, "
                               "waiting on the server, under a fifth of it)")
    if wait >= RUN_QUEUE_PCT:
        return "run_queue", (f"a worker waited for its core {wait:.0f}% of the time (>= "
                             f"{RUN_QUEUE_PCT:.0f}%; it ran {cpu:.0f}%): replies sat unread "
                             "meanwhile")
    if open_loop and sent > 0 and behind / sent > BEHIND_FRACTION:
        return "behind_schedule", (f"{behind / sent:.1%} of sends went out over 5 ms behind "
                                   f"schedule (> {BEHIND_FRACTION:.0%}), client CPU "
                                   f"{client_cpu:.0f}%")
    return None


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


# ---------------------------------------------------------------------------- sweep verdicts


def error_rate(s: dict) -> float:
    """The share of a step's work that failed, in [0, 1], counting each failure once.

    Messages: the largest of lost + late (never answered, or answered after --timeout),
    reply timeouts, and protocol errors (malformed, mangled or foreign replies), over
    messages sent (deliveries expected, for broadcast). One fault shows under several of
    these (a dropped reply is lost and timed out; a mangled reply leaves its message
    lost), so they are not added. Connections: failed connects, and connections lost (up
    once, then closed or reset by the peer or broken, and not back by the end of the step), over
    connections asked for (at most 1). The rate is the larger of the two. A connection an
    HTTP server closed between requests and harness reopened is neither (a reconnect)."""
    errs = s["errors"]
    http = sum(n for kind, n in errs.items()  # non-2xx, error replies (a miss is information)
               if kind.startswith(FAILED_REPLIES) and not kind.endswith("_miss"))
    failed_msgs = max(s["lost"] + s.get("late", 0), errs.get("timeout", 0),
                      errs.get("protocol", 0) + http)
    expected = s.get("deliveries_expected") or s["sent"]
    messages = min(failed_msgs / max(expected, 1), 1.0)
    failed = sum(n for kind, n in errs.items() if kind.startswith(("connect_", "tls_")))
    failed += s.get("conns_lost", 0)
    return max(messages, min(failed / max(s["conns"], 1), 1.0))


WAIT_RULES = ("client_busy", "run_queue")  # client-bound rules that count the wait for a core

def step_skipped(s: dict) -> str | None:
    """Why a step cannot be judged (it measured the client or a busy machine, or was cut
    short), or None. A whole step without a valid reply is judged all the same: neither a
    busy client nor a busy machine explains that. A step client-bound only by its wait for
    a core that other processes took is said to be on a shared core: the busy machine's
    doing."""
    if s.get("partial"):
        return "cut short"
    if s["received"] == 0:
        return None
    waited = s.get("client_bound_rule") in WAIT_RULES  # for a core others took
    if s.get("core_shared") and (waited or not s.get("client_bound")):
        return "shared core"
    if s.get("client_bound"):
        return "client-bound"
    return None


def skip_detail(s: dict) -> str:
    """Why a step was not judged, with each rule's figure: "client-bound (a worker used 95%
    of its core ...)", "shared core (other processes took 45% of core 1, worker0's)", or
    both, joined by "; "."""
    why = step_skipped(s)
    if why not in ("client-bound", "shared core"):
        return why or "judged"
    out = []
    if s.get("client_bound"):
        detail = s.get("client_bound_detail") or f"client CPU {s.get('client_cpu_pct', 0):.0f}%"
        out.append(f"client-bound ({detail})")
    if s.get("core_shared"):
        sc = s.get("shared_core") or {}
        out.append(f"shared core (other processes took {sc.get('others_pct', 0):.0f}% of core "
                   f"{sc.get('core')}, {sc.get('role')}'s)")
    return "; ".join(out)


def degradation(steps: list[dict], rules: Degradation) -> dict:
    """First step (by order) where a rule fires; steps measuring the client are skipped.

    Rules: error rate above ``max_error_rate``; p99 above ``max_p99_ms`` or above
    ``p99_factor`` times the first healthy step's p99; marginal throughput per added
    connection below ``min_gain`` of the previous step's throughput per connection.
    """
    unit = load_unit(steps)
    verdict: dict[str, Any] = {
        "degraded_at": None, "last_healthy": None, "rule": None, "detail": None,
        "unit": unit, "skipped": [], "skipped_why": [], "judged": 0, "conns_lost": []}
    base_p99 = None
    prev = None
    for s in steps:
        why = step_skipped(s)
        if why:
            verdict["skipped"].append(s.get(unit))
            verdict["skipped_why"].append(why)
            continue
        verdict["judged"] += 1
        fired = _rule_fired(s, prev, base_p99, rules)
        if fired:
            verdict.update(degraded_at=s.get(unit), rule=fired[0], detail=fired[1])
            return verdict
        p99 = s["latency_ms"]["p99"]
        if base_p99 is None and p99 is not None:
            base_p99 = p99
        if s.get("conns_lost"):  # within the error rate's limit, and named all the same
            verdict["conns_lost"].append([s.get(unit), s["conns_lost"]])
        verdict["last_healthy"] = s.get(unit)
        prev = s
    return verdict


def load_unit(steps: list[dict]) -> str:
    """What the sweep varies: "conns", "messages" or "rate" (conns when nothing varies)."""
    for key in ("conns", "messages", "rate"):
        if len({s.get(key) for s in steps}) > 1:
            return key
    return "conns"


def _rule_fired(s: dict, prev: dict | None, base_p99: float | None,
                rules: Degradation) -> tuple[str, str] | None:
    if s["received"] == 0:
        return "no_replies", f"no valid reply in the measure window ({s['sent']} sent)"
    rate = error_rate(s)
    if rate > rules.max_error_rate:
        lost = f" ({s['conns_lost']} of {s['conns']} connections lost)" \
            if s.get("conns_lost") else ""
        return "error_rate", f"error rate {rate:.2%} > {rules.max_error_rate:.2%}{lost}"
    p99 = s["latency_ms"]["p99"]
    if p99 is not None and rules.max_p99_ms is not None and p99 > rules.max_p99_ms:
        return "p99", f"p99 {p99:.3f} ms > {rules.max_p99_ms} ms"
    if p99 is not None and base_p99 and rules.p99_factor and p99 > rules.p99_factor * base_p99:
        return "p99", f"p99 {p99:.3f} ms > {rules.p99_factor}x first step ({base_p99:.3f} ms)"
    if prev is not None and s["conns"] > prev["conns"] and prev["throughput_msgs_s"] > 0:
        per_conn = prev["throughput_msgs_s"] / prev["conns"]
        gain = (s["throughput_msgs_s"] - prev["throughput_msgs_s"]) / (s["conns"] - prev["conns"])
        if gain < rules.min_gain * per_conn:
            return "throughput_gain", (f"{gain:.1f} msgs/s per added conn < {rules.min_gain} x "
                                       f"{per_conn:.1f}")
    return None


def step_name(s: dict, unit: str) -> str:
    """A step named by what its sweep varies (``unit``, from :func:`load_unit`):
    "messages=1000", "rate=50", "conns=10"."""
    value = s.get(unit)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{unit}={value}"


def threshold_failures(steps: list[dict], th: Thresholds, unit: str | None = None
                       ) -> list[str]:
    """One line per failed threshold: which, by how much, at which step (named by what the
    sweep varies; ``unit`` when ``steps`` are a part of the sweep)."""
    out = []
    unit = unit or load_unit(steps)
    for s in steps:
        where = f"step {step_name(s, unit)}"
        if s["sent"] == 0 and not s.get("partial"):
            before = s.get("sent_all", 0)
            out.append(f"nothing measured: no message was sent in the window at {where}" + (
                f" ({before} sent before it, in the warm-up, were never answered)"
                if before else ""))
        lat = s["latency_ms"]
        checks = [("p50_ms", lat["p50"], th.p50_ms), ("p95_ms", lat["p95"], th.p95_ms),
                  ("p99_ms", lat["p99"], th.p99_ms), ("mean_ms", lat.get("mean"), th.mean_ms),
                  ("max_ms", lat["max"], th.max_ms)]
        for name, value, limit in checks:
            if limit is not None and value is not None and value > limit:
                out.append(f"{name}: {value:.3f} > {limit} (by {value - limit:.3f}) at {where}")
        if th.max_lost is not None and s["lost"] > th.max_lost:
            out.append(f"lost: {s['lost']} messages > {th.max_lost} at {where}")
        rate = error_rate(s)
        if th.max_error_rate is not None and rate > th.max_error_rate:
            out.append(f"error_rate: {rate:.4%} > {th.max_error_rate:.4%} at {where}")
        if th.min_throughput is not None and s["throughput_msgs_s"] < th.min_throughput:
            out.append(f"min_throughput: {s['throughput_msgs_s']:.1f} < {th.min_throughput} "
                       f"msgs/s at {where}")
        out.extend(_server_failures(s, th, where))
    return out


def _server_failures(s: dict, th: Thresholds, where: str) -> list[str]:
    """Server CPU and memory limits; a limit that could not be checked fails (honestly)."""
    checks = [("max_server_cpu_pct", th.max_server_cpu_pct, "cpu_pct_max", 1.0, "%"),
              ("max_server_rss_mb", th.max_server_rss_mb, "rss_max_bytes", 1e6, " MB")]
    server = s.get("resources", {}).get("server")
    out = []
    for name, limit, key, scale, unit in checks:
        if limit is None:
            continue
        value = server.get(key) if server else None
        if value is None:
            out.append(f"{name}: not measured at {where} (no server watched: give "
                       "--server-pid or --server-cmd)")
        elif value / scale > limit:
            out.append(f"{name}: {value / scale:.1f}{unit} > {limit}{unit} (by "
                       f"{value / scale - limit:.1f}) at {where}")
    return out


# ---------------------------------------------------------------------------- busy machine


def shared_core(resources: dict) -> dict | None:
    """The pinned worker or server core on which other processes took the most CPU over the
    step: {"role", "core", "others_pct"}; None when no pinned core was sampled."""
    worst = None
    for role, r in resources.items():
        others = r.get("others_on_core_pct")
        if others is None or not (role.startswith(("worker", "server"))):
            continue
        if worst is None or others > worst["others_pct"]:
            worst = {"role": role, "core": r.get("core"), "others_pct": round(others, 1)}
    return worst


def resource_fields(resources: dict, cores: dict | None = None, others: list | None = None,
                    limit: float = SHARED_CORE_PCT, judge: bool = False) -> dict:
    """A step's resource figures as summary fields, flagging it ``core_shared`` (left out of
    the verdict) when other processes took >= ``limit`` % of a worker's or the server's
    core; with ``judge`` it is judged all the same and flagged ``judged_shared_core``.
    ``others``: the busiest other processes (harness.run.machine.top_others), named in
    ``shared_core["processes"]``."""
    out: dict = {"resources": resources}
    if cores:
        out["machine_cpu"] = {str(c): v for c, v in cores.items()}
    worst = shared_core(resources)
    if worst is not None:
        busy = worst["others_pct"] >= limit
        out["shared_core"] = dict(worst, limit_pct=limit, processes=others or [])
        out["core_shared"] = busy and not judge
        if busy and judge:
            out["judged_shared_core"] = True
    return out


def judge_waits(s: StepSummary) -> StepSummary:
    """--judge-shared-core: a worker's wait for a core that other processes took is the busy
    machine's doing, so the client-bound rules judge the worker's own CPU alone; a step that
    was client-bound only by that wait is judged, marked ``judged_shared_core``."""
    if s.client_bound_rule not in WAIT_RULES:
        return s
    open_loop = s.behind_schedule is not None
    bound = client_bound_rule(s.client_cpu_pct, s.behind_schedule or 0, s.sent, open_loop,
                              (s.client_cpu_pct, 0.0))
    if bound is not None:
        return replace(s, client_bound_rule=bound[0], client_bound_detail=bound[1])
    return replace(s, client_bound=False, client_bound_rule=None, client_bound_detail=None,
                   judged_shared_core=True)


def with_resources(summary: StepSummary, resources: dict, cores: dict | None = None,
                   others: list | None = None, limit: float = SHARED_CORE_PCT,
                   judge: bool = False) -> StepSummary:
    """``summary`` with its step's resource figures (:func:`resource_fields`)."""
    return replace(summary, **resource_fields(resources, cores, others, limit, judge))


# ---------------------------------------------------------------------------- no reply at all


