"""The facts under the step table, built once for the terminal table and report.html (see
docs/report-notes.md): a legend of what the less obvious rows, columns and flags count, one
line of short facts per step ("conns=10: errors reset=3; client-bound (...)"), and the
remarks that need a sentence (a watched process that died, a node's losses, the kernel's
drops). Latency in ms, memory in MB. Text only."""

from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.judge import load_unit, step_name
from harness.analysis.ramp import ramp_text
from harness.analysis.storm import storm_text

RAMP_SHOWN = 10_000  # a step's connect ramp is a line of the table from this many connects


def fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def has_stages(steps: list[dict]) -> bool:
    return any(s.get("stages") for s in steps)


def server_cpu(s: dict) -> float | None:
    return ((s.get("resources") or {}).get("server") or {}).get("cpu_pct_mean")


def broadcast(doc: dict) -> bool:
    return doc.get("delivery") == "broadcast" or any(
        "deliveries_expected" in s for s in doc.get("steps", ()))


@dataclass(frozen=True, slots=True)
class Notes:
    """What the step table needs said under it: ``legend`` (what the less obvious rows,
    columns and flags count, once per run), ``steps`` (one line per step: its short facts,
    "; "-separated), ``remarks`` (what needs a sentence: kernel drops, a dead server, a
    node's losses; one line each)."""

    legend: list[str]
    steps: list[str]
    remarks: list[str]


def notes(doc: dict) -> Notes:
    steps = doc.get("steps", [])
    unit = load_unit(steps)
    return Notes(legend(doc), [step_line(s, step_name(s, unit)) for s in steps],
                 [r for s in steps for r in step_remarks(s, step_name(s, unit))])


def legend(doc: dict) -> list[str]:
    """What the less obvious rows, columns and flags count."""
    out = []
    steps = doc.get("steps", [])
    if broadcast(doc):
        room = max((sum(n.get("receivers", 0) for n in s.get("per_node", ())) for s in steps),
                   default=0)
        out.append("broadcast: conns counts the sending connections; deliveries/s counts "
                   "messages received by every connection in the room"
                   + (f" ({room} connections, listen-only ones included)" if room else ""))
    if has_stages(steps):
        out.append("stage rows: the same step's seconds split by stage (msgs/s and latency "
                   "from the per-second series)")
    if any(len(s.get("per_machine") or ()) > 1 for s in steps):
        out.append("conns @host rows: each client machine's part of a merged step")
    out.extend(_flag_legend(steps))
    rate = "deliveries/s" if broadcast(doc) else "msgs/s"
    out.append(f"counts: {rate} is the measure window's; \"whole step\" adds "
               "warm-up and drain (what the server counted)"
               + ("; HTTP responses run from the window's start to the end of drain (the "
                  "requests in flight when the window closed, up to --inflight per connection, "
                  "are answered in drain)" if any(s.get("status") for s in steps) else ""))
    if any("service_ms" in s for s in steps):
        out.append("open loop: latency is from the intended send (a stalled server is not "
                   "hidden); service is from the actual send")
    return out


def _flag_legend(steps: list[dict]) -> list[str]:
    out = []
    if any(s.get("client_bound") for s in steps):
        out.append("CLIENT-BOUND: harness itself was the bottleneck (the rule and its figure "
                   "in the step's line): the step measures harness, not only the server, and "
                   "is left out of the verdict")
    if any(s.get("core_shared") for s in steps):
        out.append("SHARED CORE: other processes took a core a worker or the server ran on "
                   "(how much, in the step's line): a busy machine; the step is left out of "
                   "the verdict")
    if any(s.get("judged_shared_core") for s in steps):
        out.append("SHARED CORE (judged): the same, but judged all the same "
                   "(--judge-shared-core)")
    return out


def step_line(s: dict, name: str) -> str:
    """Step ``s``'s short facts on one line, led by its name ("messages=1000: ...")."""
    facts = _count_facts(s) + _quality_facts(s) + _watch_facts(s)
    if s.get("partial"):
        facts.append("cut short")
    return f"{name}: " + "; ".join(facts)


def step_notes(s: dict, name: str | None = None) -> list[str]:
    """Step ``s``'s line and its remarks (``name``: how the run names it; conns=N alone)."""
    name = name or f"conns={s['conns']}"
    return [step_line(s, name)] + step_remarks(s, name)


def _count_facts(s: dict) -> list[str]:
    """Counts: errors (non-HTTP kinds when the status codes are shown), HTTP responses,
    lost and late, the whole step's sent and replies."""
    out = []
    http = bool(s.get("status_classes"))
    errs = {k: v for k, v in s["errors"].items() if v and not (http and k.startswith("http_"))}
    if errs:
        out.append("errors " + ", ".join(f"{k}={v:,}" for k, v in errs.items()))
    if http:
        out.append("HTTP responses (window start to drain end) " + ", ".join(
            f"{k} {v:,}" for k, v in s["status_classes"].items()) + " (" + ", ".join(
            f"{k}: {v:,}" for k, v in s["status"].items()) + ")")
    out.extend(_connection_facts(s))
    if "deliveries_expected" in s:
        out.extend(_fanout_facts(s))
    elif s["lost"] or s["duplicates"]:
        out.append(f"LOST {s['lost']:,} messages, {s['duplicates']:,} duplicates")
    if s.get("late"):
        out.append(f"{s['late']:,} replies came later than --timeout")
    if "sent_all" in s:
        got = "deliveries" if "deliveries_expected" in s else "replies"
        out.append(f"whole step: sent {s['sent_all']:,}, {got} {s.get('replies', 0):,}")
    return out


def _connection_facts(s: dict) -> list[str]:
    """Connections that went down and stayed down (in the error rate), and reconnects
    (not errors)."""
    out = []
    if s.get("conns_lost"):
        out.append(f"{s['conns_lost']:,} of {s['conns']:,} connections LOST (closed, reset or "
                   "broken and not back by the end of the step, in the error rate)")
    if s.get("reconnects"):
        out.append(f"{s['reconnects']:,} reconnects (connections the server closed between "
                   "requests, reopened: not errors)")
    return out


def _quality_facts(s: dict) -> list[str]:
    """Open-loop service time, TLS handshakes, and why a step is left out of the verdict."""
    out = []
    if "service_ms" in s:
        svc = s["service_ms"]
        out.append(f"service p50 {fmt(svc['p50'])} p99 {fmt(svc['p99'])} ms")
    if s.get("handshake_ms") is not None:
        hs = s["handshake_ms"]
        out.append(f"TLS handshake p50 {fmt(hs['p50'])} p90 {fmt(hs['p90'])} p99 "
                   f"{fmt(hs['p99'])} max {fmt(hs['max'])} ms ({s.get('handshakes', 0)} "
                   "handshakes, from TCP connected)")
    if s.get("client_bound"):
        rule = s.get("client_bound_rule", "client_cpu")
        detail = s.get("client_bound_detail") or f"client CPU {s['client_cpu_pct']:.0f}%"
        server = server_cpu(s)
        also = f"; the server averaged {server:.0f}% of a core" if server is not None else ""
        out.append(f"client-bound (rule {rule}: {detail}{also})")
    if (s.get("core_shared") or s.get("judged_shared_core")) and s.get("shared_core"):
        sc = s["shared_core"]
        out.append(f"shared core: {sc['others_pct']:.0f}% of core {sc['core']} "
                   f"({sc['role']}'s) used by other processes{_limit(sc)}{_procs(sc)}"
                   + (", judged all the same (--judge-shared-core)"
                      if s.get("judged_shared_core") else ""))
    if s.get("judged_shared_core") and s.get("client_wait_pct"):
        out.append(f"a worker waited for its core {s['client_wait_pct']:.0f}% of the time: "
                   "judged on its own CPU alone (--judge-shared-core)")
    return out


def _limit(sc: dict) -> str:
    return f" (>= {sc['limit_pct']:g}%)" if sc.get("limit_pct") is not None else ""


def _procs(sc: dict) -> str:
    """The busiest other processes, as the monitor named them: ", top: stress pid 7 98%"."""
    procs = sc.get("processes") or []
    return (", top: " + ", ".join(f"{p['name']} pid {p['pid']} {p['cpu_pct']:.0f}%"
                                  for p in procs)) if procs else ""


def _watch_facts(s: dict) -> list[str]:
    """Trend, spike recovery and reconnect storm, when the step has them."""
    out = []
    if s.get("trend"):
        out.append(f"trend: {trend_text(s['trend'])}")
    if s.get("recovery"):
        out.append(f"spike recovery: {recovery_text(s['recovery'])}")
    if s.get("storm"):
        out.append(f"reconnect storm: {storm_text(s['storm'])}")
    if (s.get("ramp") or {}).get("connected", 0) >= RAMP_SHOWN:
        out.append(ramp_text(s["ramp"]))
    return out


def step_remarks(s: dict, name: str) -> list[str]:
    """What needs a sentence: a watched process that died, a node's lost deliveries, the
    kernel's drops."""
    out = []
    for role, r in (s.get("resources") or {}).items():
        if r.get("died_at_s") is not None:
            after = ("the step kept the other workers' figures" if role.startswith("worker")
                     else "the run went on")
            out.append(f"{name}: {role} DIED {r['died_at_s']:.1f} s after "
                       f"monitoring began; {after}")
    for n in s.get("per_node") or ():
        if n["lost"] or n["duplicates"] or n["reordered"] or n.get("surplus"):
            out.append(f"{name}: node {n['node']} ({n.get('target', '')}): LOST {n['lost']} "
                       f"of {n['deliveries_expected']} deliveries, {n['duplicates']} duplicates, "
                       f"{n['reordered']} reordered{_surplus(n)}")
    if s.get("kernel"):
        out.append(kernel_note(s, name))
    return out


def trend_text(t: dict) -> str:
    """"stable (p99 +0.010 ms/h, server memory +1.2 MB/h)" and the like; a step shorter than
    the trend needs ("judge_s") gives no slope per hour: "too short to judge a trend (12 s <
    60 s)", or a clear rise over the step ("memory growing (server memory +80.0 MB over
    11 s)")."""
    seconds, judge = t.get("seconds"), t.get("judge_s")
    if seconds is not None and judge is not None and seconds < judge:
        if not (t.get("p99_growing") or t.get("memory_growing")):
            return f"{t['verdict']} ({seconds} s < {judge} s)"
        return t["verdict"] + f" ({', '.join(_rises(t))} over {seconds} s)"
    parts = []
    p99 = t.get("p99_trend") or {}
    if p99.get("slope_per_h") is not None:
        parts.append(f"p99 {p99['slope_per_h']:+.3f} ms/h")
    mem = t.get("memory_trend") or {}
    if mem.get("slope_per_h") is not None:
        parts.append(f"server memory {mem['slope_per_h'] / 1e6:+.1f} MB/h")
    return t["verdict"] + (f" ({', '.join(parts)})" if parts else "")


def _rises(t: dict) -> list[str]:
    """The rise of each growing figure over the step, from its fitted line."""
    out = []
    if t.get("p99_growing"):
        out.append(f"p99 {t['p99_trend']['rise']:+.3f} ms")
    if t.get("memory_growing"):
        out.append(f"server memory {t['memory_trend']['rise'] / 1e6:+.1f} MB")
    return out


def recovery_text(rec: dict) -> str:
    if rec.get("recovered"):
        return (f"{rec['recovery_s']:.1f} s back to baseline (p99 and throughput within "
                f"{rec['band']:.0%})")
    return "NOT recovered by the end" + (f" ({rec['note']})" if rec.get("note") else "")


def _fanout_facts(s: dict) -> list[str]:
    fan = s["fanout_ms"]
    return [f"deliveries {s['deliveries']:,}/{s['deliveries_expected']:,}, lost {s['lost']:,}, "
            f"duplicates {s['duplicates']:,}, reordered {s['reordered']:,}{_surplus(s)}",
            f"fan-out p50 {fmt(fan['p50'])} p99 {fmt(fan['p99'])} ms",
            f"all delivered in {s['total_s']:.3f} s (sending took {s['send_s']:.3f} s)"]


def kernel_note(s: dict, name: str | None = None) -> str:
    """The host's TCP drop counters moved during the step: stalls may be the kernel's."""
    moved = ", ".join(f"{k} +{v}" for k, v in s["kernel"].items())
    name = name or f"conns={s['conns']}"
    return (f"{name}: the kernel dropped or retransmitted packets during this step "
            f"({moved}; host-wide counters): a stall of 0.2-3 s with client and server idle "
            "is TCP waiting on its retransmit timers, not the server")


def _surplus(d: dict) -> str:
    """Deliveries of messages no sender counted (never netted against a loss)."""
    return f", SURPLUS {d['surplus']}" if d.get("surplus") else ""
