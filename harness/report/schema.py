"""The shape of a run.json, checked once when it is read (:func:`harness.report.results.read_run`),
so that report, export, merge, compare, history and a baseline meet only well-typed values.

Every number in the document is finite and every integer within int64; the fields the
commands read have their type and range: counts are integers from 0 to MAX_COUNT,
percentiles (ms) finite numbers or null, ``errors`` an object of counts, histograms
consistent with harness's layout. A field that is absent is not checked (each reader
defaults it or says it is missing). :func:`problem` names the first bad field in one
line, as ``steps[2].errors: expected an object of counts, got null``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from harness.core.histogram import LAYOUT, N_BUCKETS

MAX_COUNT = 2**53  # a count (messages, errors, histogram buckets): exact as a float too
MAX_INT = 2**63 - 1  # any integer (ns sums, times)
MAX_UNIX_S = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DEPTH = 64  # nesting: harness writes 6 levels

Check = Callable[[Any, str], None]  # raises Bad naming the field


class Bad(ValueError):
    """One bad field: its path and what is wrong with it."""


def problem(doc: Any) -> str | None:
    """Why ``doc`` is not a well-formed harness run.json (one line), or None."""
    try:
        _numbers(doc, "", 0)
        _document(doc)
    except Bad as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------- values


def _got(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict | list):
        return f"an {'object' if isinstance(v, dict) else 'array'}"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(where: str, expected: str, v: Any) -> Bad:
    return Bad(f"{where or 'run.json'}: expected {expected}, got {_got(v)}")


def _numbers(v: Any, where: str, depth: int) -> None:
    """Every number finite and every integer within int64, at any depth."""
    if depth > MAX_DEPTH:
        raise Bad(f"{where}: nested more than {MAX_DEPTH} levels")
    if isinstance(v, dict):
        for k, x in v.items():
            _numbers(x, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(v, list):
        if set(map(type, v)) <= {int}:  # a histogram's arrays: checked at C speed
            _ints(v, where, -MAX_INT - 1, MAX_INT, "an integer within int64")
            return
        for k, x in enumerate(v):
            _numbers(x, f"{where}[{k}]", depth + 1)
    elif isinstance(v, float) and not math.isfinite(v):
        raise _fail(where, "a finite number", v)
    elif isinstance(v, int) and not isinstance(v, bool) and not -MAX_INT - 1 <= v <= MAX_INT:
        raise _fail(where, "an integer within int64", v)


def _ints(v: list, where: str, lo: int, hi: int, expected: str) -> None:
    """Every item of ``v`` an integer (not a boolean) from ``lo`` to ``hi``."""
    if set(map(type, v)) <= {int} and (not v or (lo <= min(v) and max(v) <= hi)):
        return
    for k, x in enumerate(v):
        if type(x) is not int or not lo <= x <= hi:
            raise _fail(f"{where}[{k}]", expected, x)


def count(v: Any, where: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT:
        raise _fail(where, f"a count (an integer from 0 to {MAX_COUNT})", v)


def number(v: Any, where: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _fail(where, "a number", v)


def number_or_null(v: Any, where: str) -> None:
    if v is not None:
        number(v, where)


def count_or_null(v: Any, where: str) -> None:
    if v is not None:
        count(v, where)


def unix_time(v: Any, where: str) -> None:
    """Seconds since 1970 up to the end of year 9999 (what a date can show)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= MAX_UNIX_S:
        raise _fail(where, f"a Unix time in s (0 to {MAX_UNIX_S})", v)


def text(v: Any, where: str) -> None:
    if not isinstance(v, str):
        raise _fail(where, "a string", v)


def text_or_null(v: Any, where: str) -> None:
    if v is not None:
        text(v, where)


def flag(v: Any, where: str) -> None:
    if not isinstance(v, bool):
        raise _fail(where, "true or false", v)


def obj(v: Any, where: str) -> None:
    if not isinstance(v, dict):
        raise _fail(where, "an object", v)


def array(v: Any, where: str) -> None:
    if not isinstance(v, list):
        raise _fail(where, "an array", v)


def figures(v: Any, where: str) -> None:
    """Percentiles in ms (``p50`` ... ``max``, ``mean``): numbers or null."""
    if not isinstance(v, dict):
        raise _fail(where, "an object of figures (ms)", v)
    for k, x in v.items():
        number_or_null(x, f"{where}.{k}")


def counts(v: Any, where: str) -> None:
    """``errors``, ``status``, ...: an object of counts by kind."""
    if not isinstance(v, dict):
        raise _fail(where, "an object of counts", v)
    for k, x in v.items():
        count(x, f"{where}.{k}")


def texts(v: Any, where: str) -> None:
    array(v, where)
    for k, x in enumerate(v):
        text(x, f"{where}[{k}]")


def numbers(v: Any, where: str) -> None:
    array(v, where)
    for k, x in enumerate(v):
        number_or_null(x, f"{where}[{k}]")


# ---------------------------------------------------------------------------- histograms


def histogram(v: Any, where: str) -> None:
    """A histogram as Histogram.to_dict writes it, consistent with harness's layout."""
    obj(v, where)
    if v.get("layout") != list(LAYOUT):
        raise _fail(f"{where}.layout", f"harness's layout {list(LAYOUT)}", v.get("layout"))
    for key in ("total", "overflow", "underflow"):
        count(v.get(key), f"{where}.{key}")
    for key in ("min", "max"):
        count_or_null(v.get(key), f"{where}.{key}")
    if isinstance(v.get("sum"), bool) or not isinstance(v.get("sum"), int) or v["sum"] < 0:
        raise _fail(f"{where}.sum", "a sum of ns (an integer from 0)", v.get("sum"))
    _buckets(v, where)


def _buckets(v: dict, where: str) -> None:
    idx: Any = v.get("idx")
    cnt: Any = v.get("counts")
    array(idx, f"{where}.idx")
    array(cnt, f"{where}.counts")
    if len(idx) != len(cnt):
        raise Bad(f"{where}: idx has {len(idx)} buckets, counts {len(cnt)}")
    _ints(idx, f"{where}.idx", 0, N_BUCKETS - 1, f"a bucket from 0 to {N_BUCKETS - 1}")
    _ints(cnt, f"{where}.counts", 0, MAX_COUNT, f"a count (an integer from 0 to {MAX_COUNT})")
    if sum(cnt) + v["overflow"] != v["total"]:
        raise Bad(f"{where}.total: {v['total']} is not the sum of its counts and overflow "
                  f"({sum(cnt) + v['overflow']})")
    if (v["total"] == 0) != (v.get("min") is None):
        raise Bad(f"{where}.min: {_got(v.get('min'))} for a total of {v['total']}")


def histograms(v: Any, where: str) -> None:
    obj(v, where)
    for k, h in v.items():
        histogram(h, f"{where}.{k}")


def histogram_list(v: Any, where: str) -> None:
    array(v, where)
    for k, h in enumerate(v):
        histogram(h, f"{where}[{k}]")


# ---------------------------------------------------------------------------- the document

STEP: dict[str, Check] = {
    "conns": count, "connected": count, "duration_s": number_or_null, "sent": count,
    "received": count, "throughput_msgs_s": number, "throughput_mb_s": number,
    "latency_ms": figures, "connect_ms": figures, "service_ms": figures,
    "handshake_ms": figures, "fanout_ms": figures, "errors": counts, "lost": count,
    "duplicates": count, "late": count, "client_cpu_pct": number_or_null,
    "client_cpu_pct_per_worker": numbers, "client_bound": flag, "partial": flag,
    "sent_all": count, "replies": count, "messages": count_or_null, "rate": number_or_null,
    "behind_schedule": count, "kinds": array, "users": counts, "stages": array,
    "recovery": obj, "kernel": counts, "resources": obj, "trend": obj, "handshakes": count,
    "status": counts, "status_classes": counts, "client_bound_rule": text_or_null,
    "failed_bodies": obj,
    "client_bound_detail": text_or_null, "first_unparsed": text_or_null,
    "measure_started_unix_s": unix_time, "histograms": histograms,
    "second_histograms": histogram_list,
}
KIND: dict[str, Check] = {**STEP, "name": text}  # a row of a message mix
CONFIG: dict[str, Check] = {
    "framing": text, "name": text, "workload": text,
    "warmup_s": number_or_null, "timeout_s": number_or_null, "pacing": obj,
    "thresholds": obj, "degradation": obj, "targets": array, "steps": array,
}
PACING: dict[str, Check] = {"mode": text, "inflight": count_or_null, "rate": number_or_null,
                            "think_s": number_or_null, "think_max_s": number_or_null}
ENVIRONMENT: dict[str, Check] = {
    "host": text, "started_utc": text, "started_unix_s": unix_time, "ended_unix_s": unix_time,
    "harness": text, "cores": count, "workers": count,
}
DEGRADATION: dict[str, Check] = {
    "degraded_at": number_or_null, "last_healthy": number_or_null, "rule": text_or_null,
    "detail": text_or_null, "unit": text_or_null, "skipped": array, "skipped_why": array,
    "judged": count,
}
TOP: dict[str, Check] = {
    "schema_version": count, "partial": flag, "target": text, "targets": texts,
    "workload": text, "delivery": text_or_null, "embedded": text_or_null, "argv": texts,
    "warnings": texts, "merged_from": texts,
}


def fields(v: dict, spec: dict[str, Check], where: str) -> None:
    """Each field of ``spec`` that ``v`` has, checked."""
    for key, check in spec.items():
        if key in v:
            check(v[key], f"{where}.{key}" if where else key)


def _document(doc: Any) -> None:
    obj(doc, "")
    fields(doc, TOP, "")
    array(doc.get("steps"), "steps")
    for k, step in enumerate(doc["steps"]):
        _step(step, f"steps[{k}]")
    for key, spec in (("config", CONFIG), ("environment", ENVIRONMENT),
                      ("degradation", DEGRADATION)):
        if key in doc:
            obj(doc[key], key)
            fields(doc[key], spec, key)
    _config(doc.get("config") or {})
    if "thresholds" in doc:
        obj(doc["thresholds"], "thresholds")
        if "failed" in doc["thresholds"]:
            texts(doc["thresholds"]["failed"], "thresholds.failed")


def _step(step: Any, where: str) -> None:
    obj(step, where)
    fields(step, STEP, where)
    for k, row in enumerate(step.get("kinds") or []):
        obj(row, f"{where}.kinds[{k}]")
        fields(row, KIND, f"{where}.kinds[{k}]")


def _config(cfg: dict) -> None:
    if "pacing" in cfg:
        fields(cfg["pacing"], PACING, "config.pacing")
    for key in ("thresholds", "degradation"):
        for name, v in (cfg.get(key) or {}).items():
            number_or_null(v, f"config.{key}.{name}")
