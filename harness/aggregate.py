"""Pure functions: merge worker results, take percentiles once, judge the sweep.

Inputs are plain values (``WorkerResult`` lists, histograms, dicts); nothing here touches a
socket or a file. Latency figures come out in ms, throughput in msgs/s and MB/s (10^6 B).
Percentiles are taken only from merged histograms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.histogram import Histogram, merge_all
from harness.ledger import FanoutPart
from harness.plan import Degradation, Step, Thresholds
from harness.result import ERROR_KINDS, WorkerResult
from harness.summary import StepSummary
from harness.trends import recovery_time, soak_verdict

SEC = 1e9
CLIENT_BOUND_CPU = 90.0  # a worker this busy (% of one core) measures itself
BEHIND_FRACTION = 0.01  # open loop: this share of sends over 5 ms late => client-bound
SHARED_CORE_PCT = 30.0  # other processes took this much of a worker's (or server's) core


def ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 6)


def latency_ms(h: Histogram) -> dict[str, float | None]:
    p50, p90, p95, p99, p999 = h.percentiles([50, 90, 95, 99, 99.9]) if len(h) else [None] * 5
    return {"p50": ms(p50), "p90": ms(p90), "p95": ms(p95), "p99": ms(p99), "p999": ms(p999),
            "max": ms(h.max), "mean": ms(h.mean()) if len(h) else None}


def connect_ms(h: Histogram) -> dict[str, float | None]:
    p50, p99 = h.percentiles([50, 99]) if len(h) else [None, None]
    return {"p50": ms(p50), "p99": ms(p99), "max": ms(h.max)}


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


def _counts(step: Step, results: list[WorkerResult], open_loop: bool, lat: Histogram,
            con: Histogram) -> StepSummary:
    """The figures every step has: counts, throughput, latency, errors, client CPU."""
    errors = dict.fromkeys(ERROR_KINDS, 0)
    for r in results:
        for k, v in r.errors.items():
            errors[k] += v
    sent = sum(r.sent for r in results)
    received = sum(r.received for r in results)
    duration = _duration_s(results, step.duration_s is None)
    cpu = [100.0 * r.cpu_s / r.wall_s for r in results if r.wall_s > 0]
    client_cpu = round(max(cpu), 1) if cpu else 0.0
    bound = client_bound_rule(client_cpu, sum(r.behind for r in results), sent, open_loop)
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
        partial=any(r.partial for r in results), sent_all=sum(r.sent_all for r in results),
        replies=sum(r.replies for r in results),
        client_bound_rule=bound[0] if bound else None,
        client_bound_detail=bound[1] if bound else None,
        first_unparsed=escape_bytes(unparsed) if unparsed else None,
        messages=step.messages, rate=step.rate or None)


def client_bound_rule(client_cpu: float, behind: int, sent: int,
                      open_loop: bool) -> tuple[str, str] | None:
    """Which client-bound rule fired, and its figure; None when the client kept up."""
    if client_cpu >= CLIENT_BOUND_CPU:
        return "client_cpu", (f"a worker used {client_cpu:.0f}% of its core "
                              f"(>= {CLIENT_BOUND_CPU:.0f}%)")
    if open_loop and sent > 0 and behind / sent > BEHIND_FRACTION:
        return "behind_schedule", (f"{behind / sent:.1%} of sends went out over 5 ms behind "
                                   f"schedule (> {BEHIND_FRACTION:.0%}), client CPU "
                                   f"{client_cpu:.0f}%")
    return None


def escape_bytes(data: bytes) -> str:
    r"""Bytes as printable ASCII, escaped like a Python literal (b"\x00\r\n" -> "\x00\r\n");
    ``unescape_bytes`` reverses it."""
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


def unescape_bytes(text: str) -> bytes:
    return text.encode("ascii").decode("unicode_escape").encode("latin-1")


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


TREND_MIN_SECONDS = 10  # shorter steps get no trend verdict


def trend_figures(series: dict, monitor_rows: list[dict]) -> dict | None:
    """The p99 trend over a step's seconds, and the server's memory trend when it was
    watched (rows from the resource monitor, role "server"). None for short steps."""
    if len(series.get("second", ())) < TREND_MIN_SECONDS:
        return None
    rows = [r for r in monitor_rows if r.get("role") == "server" and r.get("rss_bytes")]
    rss_s = [float(r["second"]) for r in rows] or None
    rss = [float(r["rss_bytes"]) for r in rows] or None
    v = soak_verdict([float(x) for x in series["second"]], series["p99_ms"], rss_s, rss)
    return {k: v[k] for k in ("verdict", "p99_growing", "memory_growing", "p99_trend",
                              "memory_trend")}


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


def merge_fanout(parts: list[FanoutPart]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                   np.ndarray]:
    """Per distinct message: (key, receivers that got it, last first-arrival ns, intended ns)."""
    keys = np.concatenate([p.msg_key for p in parts])
    if not len(keys):
        e = np.zeros(0, dtype=np.int64)
        return keys, e, e, e
    count = np.concatenate([p.msg_count for p in parts])
    last = np.concatenate([p.msg_last for p in parts])
    tint = np.concatenate([p.msg_t for p in parts])
    order = np.argsort(keys, kind="stable")
    keys, count, last, tint = keys[order], count[order], last[order], tint[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return (keys[starts], np.add.reduceat(count, starts), np.maximum.reduceat(last, starts),
            tint[starts])


def fanout_figures(step: Step, results: list[WorkerResult], receivers: np.ndarray,
                   sent: int) -> tuple[dict, Histogram]:
    parts = [r.fanout for r in results if r.fanout is not None]
    n_nodes = len(receivers)
    uniq = sum((p.node_unique for p in parts), np.zeros(n_nodes, dtype=np.int64))
    dups = sum((p.node_dups for p in parts), np.zeros(n_nodes, dtype=np.int64))
    reord = sum((p.node_reordered for p in parts), np.zeros(n_nodes, dtype=np.int64))
    expected = sent * receivers
    total_receivers = int(receivers.sum())
    _, count, last, tint = merge_fanout(parts)
    done = count >= total_receivers
    fan = Histogram()
    if done.any():
        fan.record(last[done] - tint[done])
    first_send = min((r.first_send for r in results if r.first_send), default=0)
    last_send = max((r.last_send for r in results), default=0)
    last_recv = int(last.max()) if len(last) else 0
    per_node = [{"node": i, "receivers": int(receivers[i]),
                 "deliveries_expected": int(expected[i]), "deliveries": int(uniq[i]),
                 "lost": int(max(expected[i] - uniq[i], 0)),
                 "surplus": int(max(uniq[i] - expected[i], 0)), "duplicates": int(dups[i]),
                 "reordered": int(reord[i])} for i in range(n_nodes)]
    fig = {
        "deliveries_expected": int(expected.sum()),
        "deliveries": int(uniq.sum()),
        "lost": int(sum(n["lost"] for n in per_node)),
        # distinct deliveries beyond the expected (messages no sender counted in its window):
        # its own figure, so that it never hides a loss on the same node
        "surplus": int(sum(n["surplus"] for n in per_node)),
        "duplicates": int(dups.sum()),
        "reordered": int(reord.sum()),
        "fanout_ms": latency_ms(fan),
        "fanout_complete": int(done.sum()),
        "total_s": round((last_recv - first_send) / SEC, 6) if first_send and last_recv else 0.0,
        "send_s": round((last_send - first_send) / SEC, 6) if first_send else 0.0,
        "per_node": per_node,
    }
    return fig, fan


# ---------------------------------------------------------------------------- sweep verdicts


def error_rate(s: dict) -> float:
    """The share of a step's work that failed, in [0, 1], counting each failure once.

    Messages: the largest of lost + late (never answered, or answered after --timeout),
    reply timeouts, and protocol errors (malformed, mangled or foreign replies), over
    messages sent (deliveries expected, for broadcast). One fault shows under several of
    these (a dropped reply is lost and timed out; a mangled reply leaves its message
    lost), so they are not added. Connections: failed connects over connections asked for.
    The rate is the larger of the two."""
    errs = s["errors"]
    failed_msgs = max(s["lost"] + s.get("late", 0), errs.get("timeout", 0),
                      errs.get("protocol", 0))
    expected = s.get("deliveries_expected") or s["sent"]
    messages = min(failed_msgs / max(expected, 1), 1.0)
    failed = sum(n for kind, n in errs.items() if kind.startswith("connect_"))
    return max(messages, failed / max(s["conns"], 1))


def step_skipped(s: dict) -> str | None:
    """Why a step cannot be judged (it measured the client or a busy machine, or was cut
    short), or None. A whole step without a valid reply is judged all the same: neither a
    busy client nor a busy machine explains that."""
    if s.get("partial"):
        return "cut short"
    if s["received"] == 0:
        return None
    if s.get("client_bound"):
        return "client-bound"
    if s.get("core_shared"):
        return "shared core"
    return None


def degradation(steps: list[dict], rules: Degradation) -> dict:
    """First step (by order) where a rule fires; steps measuring the client are skipped.

    Rules: error rate above ``max_error_rate``; p99 above ``max_p99_ms`` or above
    ``p99_factor`` times the first healthy step's p99; marginal throughput per added
    connection below ``min_gain`` of the previous step's throughput per connection.
    """
    unit = load_unit(steps)
    verdict: dict[str, Any] = {
        "degraded_at": None, "last_healthy": None, "rule": None, "detail": None,
        "unit": unit, "skipped": [], "skipped_why": [], "judged": 0}
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
        return "error_rate", f"error rate {rate:.2%} > {rules.max_error_rate:.2%}"
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


def threshold_failures(steps: list[dict], th: Thresholds) -> list[str]:
    """One line per failed threshold: which, by how much, at which step."""
    out = []
    for s in steps:
        where = f"step conns={s['conns']}"
        if s["sent"] == 0 and not s.get("partial"):
            before = s.get("sent_all", 0)
            out.append(f"nothing measured: no message was sent in the window at {where}" + (
                f" ({before} sent before it, in the warm-up, were never answered)"
                if before else ""))
        lat = s["latency_ms"]
        checks = [("p50_ms", lat["p50"], th.p50_ms), ("p95_ms", lat["p95"], th.p95_ms),
                  ("p99_ms", lat["p99"], th.p99_ms)]
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


def resource_fields(resources: dict, cores: dict | None = None) -> dict:
    """A step's resource figures as summary fields, flagging it ``core_shared`` when other
    processes took >= SHARED_CORE_PCT of a worker's or the server's core."""
    out: dict = {"resources": resources}
    if cores:
        out["machine_cpu"] = {str(c): v for c, v in cores.items()}
    worst = shared_core(resources)
    if worst is not None:
        out["shared_core"] = worst
        out["core_shared"] = worst["others_pct"] >= SHARED_CORE_PCT
    return out


def with_resources(summary: StepSummary, resources: dict,
                   cores: dict | None = None) -> StepSummary:
    """``summary`` with its step's resource figures (:func:`resource_fields`)."""
    return replace(summary, **resource_fields(resources, cores))


# ---------------------------------------------------------------------------- no reply at all


def no_reply_diagnosis(steps: list[dict], framing: str) -> str | None:
    """One line when not a single valid reply arrived in the whole run (any step, warm-up
    and drain included): what was sent, what came back, the first bytes that did not
    parse, and a guess at why. None when some valid reply came."""
    if not steps or any(s.get("replies", s["received"]) for s in steps):
        return None
    sent = sum(s.get("sent_all", s["sent"]) for s in steps)
    conns = max(s.get("connected", s["conns"]) for s in steps)
    errs = {k: sum(s["errors"].get(k, 0) for s in steps) for k in steps[0]["errors"]}
    raw_text = next((s["first_unparsed"] for s in steps if s.get("first_unparsed")), "")
    raw = unescape_bytes(raw_text)
    back = [f"{errs[k]} {name}" for k, name in (
        ("protocol", "replies that did not parse"), ("closed", "connections closed by it"),
        ("reset", "connections reset"), ("timeout", "reply timeouts")) if errs.get(k)]
    got = ", ".join(back) if back else "nothing"
    first = f'; first bytes received: "{raw_text}"' if raw else "; no bytes came back"
    return (f"no valid reply in the whole run: sent {sent} stamped {framing} messages on "
            f"{conns} connections; got back {got}{first}; "
            f"{guess(raw, framing, errs.get('closed', 0) + errs.get('reset', 0))}")


RESP = re.compile(rb"^(?:[-+][A-Za-z]{2,}|[:$*]-?\d+\r\n)")  # -ERR .., +OK, :1, $5, *2


def guess(raw: bytes, framing: str, hung_up: int = 0) -> str:
    """What the bytes that came back (and ``hung_up`` connections closed or reset by the
    target) suggest."""
    if not raw and hung_up:
        return (f"the target hung up without a reply: does it expect {framing} frames "
                "(--framing)?")
    if not raw:
        return ("the target took the messages and never answered: is it an echo server, "
                "and does it expect this framing?")
    if raw.startswith(b"HTTP/") or raw.lstrip()[:9].lower() in (b"<!doctype", b"<html>"):
        return "the target answered with HTTP"  # (an HTTP/0.9 error is a bare HTML page)
    if RESP.match(raw):
        return "the target answered in RESP (the Redis protocol): it is not an echo server"
    if framing != "newline" and (raw.endswith(b"\n") or b"\n" in raw and _mostly_text(raw)):
        return "framing mismatch: the replies look like newline frames (try --framing newline)"
    if framing == "newline" and len(raw) >= 4 and not _mostly_text(raw[:16]):
        return ("framing mismatch: the replies look binary, not newline frames (try "
                "--framing len32 or len16)")
    return "replies carry no stamp: is it an echo server?"


def _mostly_text(b: bytes) -> bool:
    printable = sum(32 <= c < 127 or c in (9, 13) for c in b)
    return len(b) > 0 and printable >= 0.9 * len(b)
