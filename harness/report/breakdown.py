"""The tables beside the step table, as (headers, rows) for the terminal and the page: one
row per request (or message kind) per step, and one row per user class. Text only; figures
come from run.json as written (latency ms, counts), nothing is recomputed.
"""

from __future__ import annotations

from harness.analysis.judge import load_unit, step_name

Table = tuple[list[str], list[list]]


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def think_text(lo: float | None, hi: float | None) -> str:
    """A think time in s: "1-5 s", "0.5 s", or "none"."""
    lo, hi = lo or 0.0, hi or 0.0
    if hi > lo:
        return f"{lo:g}-{hi:g} s"
    return f"{lo:g} s" if lo else "none"


def kind_table(doc: dict) -> Table | None:
    """Each request's (HTTP) or message kind's sent, replies and latency, per step; None
    when the run had a single kind."""
    steps = doc.get("steps", [])
    if not any(s.get("kinds") for s in steps):
        return None
    unit = load_unit(steps)
    what = "request" if doc.get("workload") == "http" else "kind"
    head = ["step", what, "sent", "replies", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    body = []
    for s in steps:
        name = step_name(s, unit)
        for k in s.get("kinds") or ():
            lat = k.get("latency_ms") or {}
            body.append([name, k["kind"], f"{k['sent']:,}", f"{k['received']:,}",
                         _f(lat.get("p50")), _f(lat.get("p90")), _f(lat.get("p99")),
                         _f(lat.get("max"))])
    return head, body


def user_table(doc: dict) -> Table | None:
    """Each user class: its weight, think time, requests, and its users (connections) at
    each step; None when the run had no user classes."""
    classes = (doc.get("config") or {}).get("users") or []
    if not classes:
        return None
    steps = doc.get("steps", [])
    unit = load_unit(steps)
    kinds = [r.get("name", "") for r in (doc.get("config") or {}).get("requests") or ()]
    head = ["class", "weight", "think", "requests"] + [
        f"users at {step_name(s, unit)}" for s in steps]
    body = []
    for c in classes:
        first, count = int(c.get("first", 0)), int(c.get("count", 0))
        names = [k.split(".", 1)[-1] for k in kinds[first:first + count]]
        body.append([c["name"], f"{c.get('weight', 0):g}",
                     think_text(c.get("think_s"), c.get("think_max_s")), ", ".join(names)]
                    + [str((s.get("users") or {}).get(c["name"], "-")) for s in steps])
    return head, body


def side_tables(doc: dict) -> dict[str, Table]:
    """The tables a run has, by title, in page order."""
    out = {}
    users = user_table(doc)
    if users:
        out["user classes"] = users
    kinds = kind_table(doc)
    if kinds:
        out["per request" if doc.get("workload") == "http" else "per kind"] = kinds
    return out
