"""The terminal table: one row per step, then the degradation verdict. Text only."""

from __future__ import annotations

from tabulate import tabulate

from harness.report.safe import printable_doc

HEADERS = ("conns", "msgs/s", "MB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
           "conn p99 ms", "errors", "lost", "client CPU %")


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def step_cells(s: dict) -> list:
    lat = s["latency_ms"]
    cpu = f"{s['client_cpu_pct']:.0f}" + (" CLIENT-BOUND" if s.get("client_bound") else "")
    label = str(s["conns"]) + ("*" if s.get("partial") else "")
    if s.get("messages") is not None:
        label += f" x{s['messages']}m"
    return [label, f"{s['throughput_msgs_s']:.0f}", _f(s["throughput_mb_s"], 2), _f(lat["p50"]),
            _f(lat["p90"]), _f(lat["p99"]), _f(lat["p999"]), _f(lat["max"]),
            _f(s["connect_ms"]["p99"]), sum(s["errors"].values()), s["lost"], cpu]


def render(doc: dict) -> str:
    """The table, its notes and the verdict; control characters in any string of ``doc``
    (kind names, labels, quoted bytes) are shown escaped, never sent to the terminal."""
    doc = printable_doc(doc)
    lines = [tabulate([step_cells(s) for s in doc["steps"]], headers=HEADERS,
                      disable_numparse=True, stralign="right")]
    for s in doc["steps"]:
        lines.extend(_notes(s))
    lines.append(verdict_line(doc["degradation"]))
    if doc.get("partial"):
        lines.append("PARTIAL: the run was cut short; the steps above are what was measured "
                     "(* = step cut short).")
    return "\n".join(lines)


def _notes(s: dict) -> list[str]:
    out = []
    errs = {k: v for k, v in s["errors"].items() if v}
    if errs:
        out.append(f"conns={s['conns']}: errors " + ", ".join(f"{k}={v}" for k, v in errs.items()))
    if "deliveries_expected" in s:
        out.extend(_fanout_notes(s))
    elif s["lost"] or s["duplicates"]:
        out.append(f"conns={s['conns']}: LOST {s['lost']} messages, {s['duplicates']} duplicates")
    if s.get("late"):
        out.append(f"conns={s['conns']}: {s['late']} replies came later than --timeout")
    if s.get("client_bound"):
        server = (s.get("resources") or {}).get("server") or {}
        also = ""
        if server.get("cpu_pct_mean") is not None:
            also = f"; the server averaged {server['cpu_pct_mean']:.0f}% of a core"
        out.append(f"conns={s['conns']}: the client was the bottleneck (CPU "
                   f"{s['client_cpu_pct']:.0f}%{also}): this step measures harness, not "
                   "only the server")
    for k in s.get("kinds", ()):
        lat = k["latency_ms"]
        out.append(f"conns={s['conns']}:   kind {k['kind']}: sent {k['sent']}, replies "
                   f"{k['received']}, p50 {_f(lat['p50'])} p99 {_f(lat['p99'])} ms")
    out.extend(_watch_notes(s))
    if s.get("kernel"):
        out.append(kernel_note(s))
    if "service_ms" in s:
        svc = s["service_ms"]
        out.append(f"conns={s['conns']}: open loop: latency from intended send; service time "
                   f"from actual send p50 {_f(svc['p50'])} p99 {_f(svc['p99'])} ms")
    return out


def _watch_notes(s: dict) -> list[str]:
    """Server deaths, trends and spike recovery, when the step has them."""
    out = []
    for role, r in (s.get("resources") or {}).items():
        if r.get("died_at_s") is not None:
            after = ("the step kept the other workers' figures" if role.startswith("worker")
                     else "the run went on")
            out.append(f"conns={s['conns']}: {role} DIED {r['died_at_s']:.1f} s after "
                       f"monitoring began; {after}")
    if s.get("trend") and s["trend"]["verdict"] != "stable":
        out.append(f"conns={s['conns']}: trend over the step: {s['trend']['verdict']}")
    if s.get("recovery"):
        rec = s["recovery"]
        out.append(f"conns={s['conns']}: spike recovery: " + (
            f"{rec['recovery_s']:.1f} s back to baseline (p99 and throughput within "
            f"{rec['band']:.0%})" if rec["recovered"] else "NOT recovered by the end"))
    return out


def verdict_line(d: dict) -> str:
    unit = d.get("unit", "conns")
    skipped = ""
    if d.get("skipped"):
        skipped = (f" (ignored, client-bound or cut short: {', '.join(map(str, d['skipped']))} "
                   f"{unit})")
    if d.get("degraded_at") is None:
        healthy = d.get("last_healthy")
        return ("Degradation: none within the sweep" +
                (f"; last healthy step: {healthy} {unit}" if healthy is not None else "") +
                skipped)
    return (f"Degradation: at {d['degraded_at']} {unit} (rule {d['rule']}: {d['detail']}); "
            f"last healthy step: {d['last_healthy']} {unit}{skipped}")


def _fanout_notes(s: dict) -> list[str]:
    where = f"conns={s['conns']}" + (f" m={s['messages']}" if s.get("messages") else "")
    fan = s["fanout_ms"]
    out = [f"{where}: deliveries {s['deliveries']}/{s['deliveries_expected']}, lost {s['lost']}, "
           f"duplicates {s['duplicates']}, reordered {s['reordered']}"
           f"{_surplus(s)}; fan-out p50 "
           f"{_f(fan['p50'])} p99 {_f(fan['p99'])} ms; total {s['total_s']:.3f} s, send "
           f"{s['send_s']:.3f} s"]
    for n in s["per_node"]:
        if n["lost"] or n["duplicates"] or n["reordered"] or n.get("surplus"):
            out.append(f"{where}: node {n['node']} ({n.get('target', '')}): LOST {n['lost']} "
                       f"of {n['deliveries_expected']} deliveries, {n['duplicates']} duplicates, "
                       f"{n['reordered']} reordered{_surplus(n)}")
    return out


def kernel_note(s: dict) -> str:
    """The host's TCP drop counters moved during the step: stalls may be the kernel's."""
    moved = ", ".join(f"{k} +{v}" for k, v in s["kernel"].items())
    return (f"conns={s['conns']}: the kernel dropped or retransmitted packets during this step "
            f"({moved}; host-wide counters): a stall of 0.2-3 s with client and server idle "
            "is TCP waiting on its retransmit timers, not the server")


def _surplus(d: dict) -> str:
    """Deliveries of messages no sender counted (never netted against a loss)."""
    return f", SURPLUS {d['surplus']}" if d.get("surplus") else ""
