"""The terminal table: the command, one row per step (and per stage, and per machine of a
merged run), notes, then the degradation verdict. Text only.

Columns appear only when they say something: ``messages`` for message-count steps, ``stage``
for staged steps, ``server CPU %`` when a server was watched. Broadcast runs count
deliveries (every message on every connection of the room) and say so.
"""

from __future__ import annotations

import shlex

from tabulate import tabulate

from harness.core.safe import printable_doc
from harness.report.breakdown import side_tables
from harness.report.facts import broadcast, fmt, has_stages, notes, server_cpu

HEADERS = ("conns", "msgs/s", "MB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
           "conn p99 ms", "errors", "lost", "client CPU %")


def _has_messages(steps: list[dict]) -> bool:
    return any(s.get("messages") is not None for s in steps)


def _has_server(steps: list[dict]) -> bool:
    return any(server_cpu(s) is not None for s in steps)


def headers(doc: dict) -> list[str]:
    steps = doc.get("steps", [])
    out = list(HEADERS)
    if broadcast(doc):
        out[1] = "deliveries/s"
    if has_stages(steps):
        out.insert(1, "stage")
    if _has_messages(steps):
        out.insert(1, "messages")
    if _has_server(steps):
        out.append("server CPU %")
    return out


def _flags(s: dict) -> str:
    flags = [" CLIENT-BOUND" if s.get("client_bound") else "",
             " SHARED CORE" if s.get("core_shared") else "",
             " SHARED CORE (judged)" if s.get("judged_shared_core") else ""]
    return "".join(flags)


def step_cells(s: dict, steps: list[dict] | None = None) -> list:
    """One step's row; ``steps`` (the whole run) decides the optional columns."""
    steps = steps if steps is not None else [s]
    lat = s["latency_ms"]
    cpu = f"{s['client_cpu_pct']:.0f}" + _flags(s)
    row = [str(s["conns"]) + ("*" if s.get("partial") else ""),
           f"{s['throughput_msgs_s']:.0f}", fmt(s["throughput_mb_s"], 2), fmt(lat["p50"]),
           fmt(lat["p90"]), fmt(lat["p99"]), fmt(lat["p999"]), fmt(lat["max"]),
           fmt(s["connect_ms"]["p99"]), sum(s["errors"].values()), s["lost"], cpu]
    return _optional(row, steps, s.get("messages"), "all" if s.get("stages") else "",
                     server_cpu(s))


def _optional(row: list, steps: list[dict], messages: int | None, stage: str,
              server: float | str | None) -> list:
    if has_stages(steps):
        row.insert(1, stage)
    if _has_messages(steps):
        row.insert(1, "-" if messages is None else f"{messages:,}")
    if _has_server(steps):
        row.append(server if isinstance(server, str) else fmt(server, 0))
    return row


def stage_cells(st: dict, k: int, steps: list[dict]) -> list:
    """A stage's row under its step: its own msgs/s, latency and errors."""
    lat = st.get("latency_ms") or {}  # (runs written before stages had figures: blanks)
    tput = st.get("throughput_msgs_s")
    row = [str(st.get("conns", "")), "" if tput is None else f"{tput:.0f}", "", fmt(lat.get("p50")),
           fmt(lat.get("p90")), fmt(lat.get("p99")), fmt(lat.get("p999")), fmt(lat.get("max")), "",
           st.get("errors", ""), "", ""]
    return _optional(row, steps, None, f"{k + 1}: {st.get('label', '')}", "")


def machine_cells(m: dict, steps: list[dict]) -> list:
    """One machine's part of a merged step."""
    lat = m.get("latency_ms") or {}
    cpu = "" if m.get("client_cpu_pct") is None else f"{m['client_cpu_pct']:.0f}"
    row = [f"{m.get('conns', '')} @{m.get('host') or '?'}",
           f"{m.get('throughput_msgs_s') or 0:.0f}", "", fmt(lat.get("p50")), fmt(lat.get("p90")),
           fmt(lat.get("p99")), fmt(lat.get("p999")), fmt(lat.get("max")), "",
           m.get("errors", ""), m.get("lost", ""), cpu + (" CLIENT-BOUND" if m.get(
               "client_bound") else "")]
    return _optional(row, steps, None, "", "")


def rows(doc: dict) -> list[list]:
    steps = doc.get("steps", [])
    out = []
    for s in steps:
        out.append(step_cells(s, steps))
        out.extend(stage_cells(st, k, steps) for k, st in enumerate(s.get("stages") or ()))
        if len(s.get("per_machine") or ()) > 1:
            out.extend(machine_cells(m, steps) for m in s["per_machine"])
    return out


def command_line(doc: dict) -> str | None:
    argv = doc.get("argv")
    return None if not argv else "harness " + shlex.join(argv)


def render(doc: dict) -> str:
    """The table, its notes and the verdict; control characters in any string of ``doc``
    (kind names, labels, quoted bytes) are shown escaped, never sent to the terminal."""
    doc = printable_doc(doc)
    lines = []
    cmd = command_line(doc)
    if cmd:
        lines.append(f"command: {cmd}")
    lines.append(tabulate(rows(doc), headers=headers(doc), disable_numparse=True,
                          stralign="right"))
    n = notes(doc)
    lines.extend(n.legend + n.steps + n.remarks)
    for title, (head, body) in side_tables(doc).items():
        lines.append(f"\n{title}:\n" + tabulate(body, headers=head, disable_numparse=True,
                                                  stralign="right"))
    lines.append(verdict_line(doc["degradation"]))
    if doc.get("partial"):
        lines.append("PARTIAL: the run was cut short; the steps above are what was measured "
                     "(* = step cut short).")
    return "\n".join(lines)


def verdict_line(d: dict) -> str:
    unit = d.get("unit", "conns")
    skipped = ""
    if d.get("skipped"):
        why = d.get("skipped_why") or ["client-bound or cut short"] * len(d["skipped"])
        skipped = " (left out: " + ", ".join(
            f"{load} {unit} {reason}" for load, reason in zip(d["skipped"], why, strict=False)
        ) + ")"
    if d.get("judged") == 0 and d.get("skipped"):
        return ("Degradation: no step could be judged: every step was client-bound, on a "
                f"shared core or cut short{skipped}")
    healthy = d.get("last_healthy")
    last = f"last healthy step: {healthy} {unit}" if healthy is not None else "no healthy step"
    last += lost_text(d, unit)
    if d.get("degraded_at") is None:
        return f"Degradation: none within the sweep; {last}{skipped}"
    return (f"Degradation: at {d['degraded_at']} {unit} (rule {d['rule']}: {d['detail']}); "
            f"{last}{skipped}")


def lost_text(d: dict, unit: str) -> str:
    """Steps judged healthy though connections dropped and stayed down (within the error
    rate's limit): never silently."""
    lost = d.get("conns_lost") or ()
    if not lost:
        return ""
    return " (but connections lost, within max_error_rate: " + ", ".join(
        f"{n} at {load} {unit}" for load, n in lost) + ")"
