"""Merge runs that several client machines made at the same time against one target.

Pure functions over run documents (run.json as dicts) and their per-second series: no
files, no sockets. Latency stays exact: every histogram is rebuilt from its buckets, merged
by addition (a layout mismatch is refused), and percentiles are taken once, after the merge.
Counts add up, connections too (each machine opened its own); throughput adds (the
machines loaded the target together); client CPU is the busiest worker of any machine.
Each machine's own figures stay in ``per_machine``. Runs whose time spans do not overlap
were not run at once: the merged document says so in ``warnings``. Units as in run.json
(ms, msgs/s, MB/s).
"""

from __future__ import annotations

import calendar
import time
from dataclasses import fields
from typing import Any

from harness.analysis import aggregate, judge
from harness.core.histogram import Histogram, merge_all
from harness.core.plan import Degradation, Thresholds
from harness.core.result import ERROR_KINDS

# What must agree for runs to add up to one load (pyperf's _CHECKED_METADATA): a name for
# the message, and where the value is in run.json.
CHECKED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("workload", ("workload",)), ("framing", ("config", "framing")),
    ("size", ("config", "size")), ("size", ("config", "size_spec")),
    ("pacing", ("config", "pacing")))
SUMMED = ("connected", "sent", "received", "lost", "duplicates", "late", "behind_schedule",
          "reconnects", "conns_lost")
LOAD_KEYS = ("conns", "messages", "rate")
PER_MACHINE = ("resources", "trend", "recovery", "machine_cpu", "core_shared",
               "shared_core")  # kept per run, not recomputed (the worst shared core is)


class MergeError(ValueError):
    """Runs that cannot be merged (one line saying why)."""


def check(docs: list[dict]) -> None:
    if len(docs) < 2:
        raise MergeError("give at least two runs to merge")
    versions: set[Any] = {d.get("schema_version") for d in docs}
    if len(versions) != 1:
        raise MergeError(f"runs have different schema versions: {sorted(versions)}")
    if any(d.get("delivery") == "broadcast" for d in docs):
        raise MergeError("broadcast (chat) runs cannot be merged: each machine checks stamps "
                         "with its own key, so cross-machine deliveries are not matched")
    check_metadata(docs)
    counts = {len(d["steps"]) for d in docs}
    if len(counts) != 1:
        raise MergeError(f"runs have different numbers of steps: {sorted(counts)}")
    for k, steps in enumerate(zip(*(d["steps"] for d in docs), strict=True)):
        for key in LOAD_KEYS:
            values = {s.get(key) for s in steps}
            if len(values) != 1:
                raise MergeError(f"step {k}: runs differ in {key}: {sorted(map(str, values))}")
        if any("histograms" not in s for s in steps):
            raise MergeError(f"step {k}: a run.json without histograms (was it --json "
                             "output rather than run.json?)")


def check_metadata(docs: list[dict], names: list[str] | None = None) -> None:
    """Refuse runs whose workload, framing, size or pacing differ, naming the difference
    and each run's value (by ``names``; default run1, run2, ... in the order given)."""
    names = names or [f"run{i + 1}" for i in range(len(docs))]
    for name, where in CHECKED:
        values = [_at(d, where) for d in docs]
        if any(v != values[0] for v in values[1:]):
            each = ", ".join(f"{n} {_text(v)}" for n, v in zip(names, values, strict=True))
            raise MergeError(f"runs differ in {name}: {each}")


def _at(doc: dict, where: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in where:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    return "none" if value is None else str(value)


def _hists(steps: list[dict], key: str) -> Histogram | None:
    found = [s["histograms"][key] for s in steps if key in s["histograms"]]
    if not found:
        return None
    if len(found) != len(steps):
        raise MergeError(f"histogram {key!r} is missing from some runs")
    try:
        return merge_all(Histogram.from_dict(d) for d in found)
    except ValueError as exc:
        raise MergeError(f"histogram {key!r}: {exc}") from None


def merged_errors(steps: list[dict]) -> dict[str, int]:
    """Every kind any machine counted, summed: the fixed kinds first, then the kinds that
    appear only once they occur (``http_404``, ``tls_cert``, ``redis_ERR``...) in order."""
    kinds = list(ERROR_KINDS)
    for s in steps:
        kinds += [k for k in s["errors"] if k not in kinds]
    return {k: sum(s["errors"].get(k, 0) for s in steps) for k in kinds}


def merge_step(steps: list[dict]) -> tuple[dict, dict[str, Histogram]]:
    out: dict[str, Any] = {k: v for k, v in steps[0].items()
                           if k not in ("histograms", "second_histograms", *PER_MACHINE)}
    for key in SUMMED:
        if key in steps[0]:
            out[key] = sum(s.get(key, 0) for s in steps)
    out["conns"] = sum(s["conns"] for s in steps)
    out["errors"] = merged_errors(steps)
    out["duration_s"] = max(s["duration_s"] for s in steps)
    out["throughput_msgs_s"] = round(sum(s["throughput_msgs_s"] for s in steps), 3)
    out["throughput_mb_s"] = round(sum(s["throughput_mb_s"] for s in steps), 6)
    out["client_cpu_pct"] = max(s["client_cpu_pct"] for s in steps)
    out["client_cpu_pct_per_worker"] = [c for s in steps
                                        for c in s.get("client_cpu_pct_per_worker", [])]
    out["client_bound"] = any(s.get("client_bound") for s in steps)
    out.update(worst_shared_core(steps))
    out["partial"] = any(s.get("partial") for s in steps)
    hists: dict[str, Histogram] = {}
    for key in steps[0]["histograms"]:
        h = _hists(steps, key)
        if h is not None:
            hists[key] = h
    out["latency_ms"] = aggregate.latency_ms(hists["latency"])
    out["connect_ms"] = aggregate.connect_ms(hists["connect"])
    if "service" in hists:
        out["service_ms"] = aggregate.latency_ms(hists["service"])
    if any(s.get("status") for s in steps):
        out.update(aggregate.status_counts([s.get("status") or {} for s in steps]))
    if "handshake" in hists:
        out["handshake_ms"] = aggregate.handshake_ms(hists["handshake"])
        out["handshakes"] = len(hists["handshake"])
    if "kinds" in steps[0]:
        out["kinds"] = [{"kind": row["kind"],
                         "sent": sum(s["kinds"][i]["sent"] for s in steps),
                         "received": len(hists[f"kind:{row['kind']}"]),
                         "latency_ms": aggregate.latency_ms(hists[f"kind:{row['kind']}"])}
                        for i, row in enumerate(steps[0]["kinds"])]
    out["machines"] = len(steps)
    out["per_machine"] = [dict({k: s.get(k) for k in MACHINE_KEYS if k in s},
                               errors=sum(s["errors"].values())) for s in steps]
    return out, hists


def worst_shared_core(steps: list[dict]) -> dict:
    """A merged step is on a shared core when any machine's was: ``core_shared`` and the
    machine's ``shared_core`` where others took the most (none when no machine sampled)."""
    sampled = [s for s in steps if s.get("shared_core")]
    if not sampled:
        return {}
    worst = max(sampled, key=lambda s: s["shared_core"]["others_pct"])
    return {"core_shared": any(s.get("core_shared") for s in steps),
            "shared_core": dict(worst["shared_core"], machine=steps.index(worst))}


MACHINE_KEYS = ("conns", "throughput_msgs_s", "latency_ms", "lost", "client_cpu_pct",
                "client_bound", *PER_MACHINE)


def span(doc: dict) -> tuple[float, float] | None:
    """A run's (start, end) in Unix seconds: as recorded, or (older runs) its start plus
    its steps' warm-ups and windows. None when the run says nothing of when it ran."""
    env = doc.get("environment") or {}
    start = env.get("started_unix_s")
    if start is None and env.get("started_utc"):
        try:
            start = calendar.timegm(time.strptime(env["started_utc"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return None
    if start is None:
        return None
    end = env.get("ended_unix_s")
    if end is None:
        warmup = ((doc.get("config") or {}).get("warmup_s") or 0.0)
        end = start + sum(s.get("duration_s", 0.0) + warmup for s in doc["steps"])
    return float(start), float(end)


def overlap_warnings(docs: list[dict], names: list[str]) -> list[str]:
    """One line when some runs' time spans do not overlap: they were not run at once, so
    their sum is no load the target ever saw."""
    spans = [s for s in map(span, docs) if s is not None]
    if len(spans) < len(docs):
        return ["cannot tell whether the runs overlapped in time (a run without start time)"]
    latest_start = max(s[0] for s in spans)
    earliest_end = min(s[1] for s in spans)
    if latest_start <= earliest_end:
        return []
    when = ", ".join(f"{n}: {_hms(a)}-{_hms(b)} UTC" for n, (a, b) in zip(names, spans,
                                                                       strict=True))
    return [f"the runs did not overlap in time ({when}): they were not run at once, so the "
            "merged throughput is not a load the target ever saw"]


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def merge_runs(docs: list[dict], series: list[list[dict]], names: list[str] | None = None
               ) -> tuple[dict, list[dict], list[list[Histogram]], list[dict]]:
    """(merged doc, merged series per step, merged per-second histograms per step, the merged
    histograms per step). ``series[r][k]``: run r's per-second columns for step k;
    ``names[r]`` how warnings call run r (default: its host)."""
    check(docs)
    hosts: list[Any] = [(d.get("environment") or {}).get("host") for d in docs]
    if names is None:
        distinct = all(hosts) and len(set(hosts)) == len(hosts)
        names = hosts if distinct else [f"run{i + 1}" for i in range(len(docs))]
    steps, all_series, all_seconds, all_hists = [], [], [], []
    for k, parts in enumerate(zip(*(d["steps"] for d in docs), strict=True)):
        summary, hists = merge_step(list(parts))
        for m, host in zip(summary["per_machine"], names, strict=True):
            m["host"] = host
        seconds = [[Histogram.from_dict(h) for h in p.get("second_histograms", [])]
                   for p in parts]
        cols, merged = aggregate.combine_series([series[r][k] for r in range(len(docs))],
                                                seconds)
        steps.append(summary)
        all_series.append(cols)
        all_seconds.append(merged)
        all_hists.append(hists)
    first = docs[0]
    config = first.get("config") or {}
    doc = {
        "schema_version": first["schema_version"],
        "partial": any(d.get("partial") for d in docs),
        "target": first["target"],
        "targets": first.get("targets", []),
        "workload": first.get("workload"),
        "delivery": first.get("delivery"),
        "merged_from": [d.get("environment", {}).get("host") for d in docs],
        "config": config,
        "environment": {"machines": [d.get("environment", {}) for d in docs]},
        "steps": steps,
        "degradation": judge.degradation(steps, _rules(config.get("degradation") or {})),
        "thresholds": {"failed": judge.threshold_failures(
            [_with_server(s) for s in steps], thresholds_from(config.get("thresholds") or {}))},
        "warnings": overlap_warnings(docs, names),
    }
    return doc, all_series, all_seconds, all_hists


def _rules(d: dict) -> Degradation:
    """The first run's degradation rules; a rule stored as null is off (None)."""
    known = {k: d[k] for k in ("max_error_rate", "max_p99_ms", "p99_factor", "min_gain")
             if k in d}
    if known.get("max_error_rate") is None:
        known.pop("max_error_rate", None)  # not optional: keep the default
    if known.get("min_gain") is None:
        known.pop("min_gain", None)
    return Degradation(**known)


def thresholds_from(d: dict) -> Thresholds:
    """The first run's thresholds (run.json ``config.thresholds``), known fields only."""
    names = {f.name for f in fields(Thresholds)}
    return Thresholds(**{k: v for k, v in d.items() if k in names})


def _with_server(step: dict) -> dict:
    """A merged step with the server figures a threshold checks: the highest CPU and RSS
    any machine saw of the server (each run keeps its own under ``per_machine``)."""
    seen = [m["resources"]["server"] for m in step.get("per_machine", ())
            if (m.get("resources") or {}).get("server")]
    if not seen:
        return step
    server = {key: max((s[key] for s in seen if s.get(key) is not None), default=None)
              for key in ("cpu_pct_max", "rss_max_bytes")}
    return dict(step, resources={"server": server})
