"""The terminal table: one row per step, then the degradation verdict. Text only."""

from __future__ import annotations

from tabulate import tabulate

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
    if s["lost"] or s["duplicates"]:
        out.append(f"conns={s['conns']}: LOST {s['lost']} messages, {s['duplicates']} duplicates")
    if s.get("client_bound"):
        out.append(f"conns={s['conns']}: the client was the bottleneck (CPU "
                   f"{s['client_cpu_pct']:.0f}%): this step measures harness, not the server")
    if "service_ms" in s:
        svc = s["service_ms"]
        out.append(f"conns={s['conns']}: open loop: latency from intended send; service time "
                   f"from actual send p50 {_f(svc['p50'])} p99 {_f(svc['p99'])} ms")
    return out


def verdict_line(d: dict) -> str:
    if d.get("degraded_at") is None:
        healthy = d.get("last_healthy")
        return ("Degradation: none within the sweep" +
                (f"; last healthy step: {healthy} conns" if healthy is not None else ""))
    return (f"Degradation: at {d['degraded_at']} conns (rule {d['rule']}: {d['detail']}); "
            f"last healthy step: {d['last_healthy']} conns")
