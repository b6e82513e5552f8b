"""The documents harness writes and prints: run.json (from ``run`` and ``merge``) and the
search result, built in one place from figures already computed (nothing is recomputed
here). Keys are docs/DESIGN.md's results contract; ``summary`` is run.json without histograms
(what ``--json`` prints), ``with_histograms`` adds each step's merged histograms back.

Times: ``started``/``ended`` in Unix seconds; figures in the units of the step summaries
(ms, msgs/s, MB/s).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from harness import __version__
from harness.core.histogram import Histogram
from harness.core.limits import FD_RESERVE, raise_nofile
from harness.core.plan import Plan
from harness.protocols.ws.settings import CONFIG_KEYS, WsPlan, of_plan
from harness.report.results import SCHEMA_VERSION

LOCAL = ("127.", "::1", "localhost")


def run_document(plan: Plan, workload: Any, partial: bool, steps: list[dict], verdict: dict,
                 failures: list[str], started: float, argv: list[str]) -> dict:
    """run.json without histograms: the run summary ``--json`` prints."""
    return {
        "schema_version": SCHEMA_VERSION,
        "partial": partial,
        "argv": argv,
        "target": ",".join(t.label for t in plan.targets),
        "targets": [t.label for t in plan.targets],
        "embedded": plan.embedded,
        "workload": workload.name,
        "delivery": workload.delivery,
        "protocol": workload.protocol,  # "framed" (stamped frames), "http", "resp", ...
        "config": plan_dict(plan),
        "environment": environment(plan, started),
        "steps": steps,
        "degradation": verdict,
        "thresholds": {"failed": failures},
    }


def plan_dict(plan: Plan) -> dict:
    """The resolved config as JSON-able values (the corpus as its line count, each request
    of a request table with the number of its pre-rendered byte strings, not the bytes).
    WebSocket's settings stay top-level keys, after ``tls``, as when they were Plan fields:
    its options' values on a WebSocket run, their defaults on any other."""
    d = _with_ws(asdict(plan), of_plan(plan))
    d["corpus"] = {"lines": len(plan.corpus)} if plan.corpus else None
    d["requests"] = [{"name": r.name, "weight": r.weight, "renderings": len(r.pool)}
                     for r in plan.requests]
    d["users"] = [{**u, "captures": [{c.name: c.spec for c in caps} for caps in cls.captures],
                   "checks": [c.spec if c is not None else None for c in cls.checks]}
                  for u, cls in zip(d["users"], plan.users, strict=True)]
    return d


def _with_ws(d: dict, ws: WsPlan) -> dict:
    """``d`` with WebSocket's keys of run.json's config inserted after ``tls``."""
    keys = {key: getattr(ws, attr) for key, attr in CONFIG_KEYS}
    out: dict = {}
    for k, v in d.items():
        out[k] = v
        if k == "tls":
            out.update(keys)
    return out if "tls" in d else {**d, **keys}


def environment(plan: Plan, started: float) -> dict:
    """Where and when the run ran: host, cores, kernel, Python, numpy, harness, the
    open-files limit and the connections it allows, the clock."""
    nofile = raise_nofile()
    return {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "started_unix_s": round(started, 3), "ended_unix_s": round(time.time(), 3),
            "open_files_limit": nofile,
            "max_conns_allowed": plan.workers * max(nofile - FD_RESERVE, 0),
            "host": platform.node(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "python": platform.python_version(), "numpy": np.__version__,
            "harness": __version__, "workers": plan.workers,
            "clock": "time.monotonic_ns (client and server on one host)"
            if plan.embedded or all(t.host.startswith(LOCAL) for t in plan.targets)
            else "time.monotonic_ns (client only)"}


def with_histograms(doc: dict, histograms: list[dict[str, Histogram]],
                    seconds: list[list[Histogram]]) -> dict:
    """``doc`` with each step's merged histograms and per-second latency histograms: what
    run.json holds (``doc`` itself is left as it is)."""
    full = dict(doc)
    full["steps"] = [dict(s, histograms={k: h.to_dict() for k, h in hs.items()},
                          second_histograms=[h.to_dict() for h in sec])
                     for s, hs, sec in zip(doc["steps"], histograms, seconds, strict=True)]
    return full


def search_document(result: dict, summaries: list[dict], over: str, slo_text: str,
                    max_errors: float | None, tolerance: float, conns: int) -> dict:
    """What ``harness search --json`` prints: the load found, its unit, and every probe
    (with the service p99 and late sends of each probe's step)."""
    for p, summary in zip(result["probes"], summaries, strict=True):
        p["service_p99_ms"] = (summary.get("service_ms") or {}).get("p99")
        p["behind_schedule"] = summary.get("behind_schedule")
    return {"max_load": result["max_load"], "unit": "msgs_s" if over == "rate" else "conns",
            "slo": slo_text, "max_errors": max_errors, "tolerance": tolerance,
            "converged": result["converged"], "bracket": result["bracket"],
            "searched_down": result["searched_down"], "floor": result["floor"],
            "client_limit": result.get("client_limit"),
            "inconclusive": result.get("inconclusive"),
            "probes": result["probes"], "conns": conns if over == "rate" else None}
