"""Judging a sweep from its steps' summaries (the documented JSON keys): the error rate of a
step, the degradation point (the first step where a rule fires, and the last healthy one),
and the thresholds that failed, each as one line. Steps the client or a busy machine
bottlenecked are left out (harness.analysis.bottleneck)."""

from __future__ import annotations

from typing import Any

from harness import protocols
from harness.analysis.bottleneck import step_skipped
from harness.core.plan import Degradation, Thresholds

FAILED_REPLIES = tuple(p for s in protocols.REGISTRY.values() for p in s.failed_replies)


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
