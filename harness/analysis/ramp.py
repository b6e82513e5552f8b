"""The connect ramp (a connect storm): how fast a step's connections were made, and how
long each connect took, per second of the ramp.

Input: each worker's rows ``(began, completed)`` in ns of ``time.monotonic_ns()`` (shared
by the workers of one machine), one per connect that completed, and the failed connects by
kind. Seconds count from the first connect begun in any worker; a connect belongs to the
second it completed in. Latency percentiles come from a merged histogram per second
(harness.core.histogram), never from averaged percentiles. Pure: no sockets, no clocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.histogram import Histogram
from harness.core.units import SEC

MAX_SECONDS = 3600  # a ramp longer than this is summed into its last second


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def ramp_figures(rows: list[np.ndarray], failed: dict[str, int]) -> dict[str, Any] | None:
    """The ramp of a step: ``connected``, ``time_to_connect_s`` (first connect begun to
    last completed), ``connect_rate`` (connected per second over it), ``per_second``
    (``{"s", "connected", "p50_ms", "p99_ms", "max_ms"}``, one per second) and ``failed``
    (connect errors by kind). None when nothing connected nor failed."""
    both = np.concatenate([r.reshape(-1, 2) for r in rows]) if rows else np.empty((0, 2))
    both = both.astype(np.int64)
    if not len(both):
        return {"connected": 0, "time_to_connect_s": None, "connect_rate": None,
                "per_second": [], "failed": failed} if failed else None
    t0 = int(both[:, 0].min())
    span_ns = int(both[:, 1].max()) - t0
    sec = np.minimum((both[:, 1] - t0) // SEC, MAX_SECONDS - 1)
    elapsed = both[:, 1] - both[:, 0]
    order = np.argsort(sec, kind="stable")
    sec, elapsed = sec[order], elapsed[order]
    cuts = np.flatnonzero(np.diff(sec)) + 1
    per_second = []
    for part_sec, part in zip(np.split(sec, cuts), np.split(elapsed, cuts), strict=True):
        h = Histogram()
        h.record(part)
        p50, p99, top = h.percentiles([50, 99, 100])
        per_second.append({"s": int(part_sec[0]), "connected": len(part),
                           "p50_ms": _ms(p50), "p99_ms": _ms(p99), "max_ms": _ms(top)})
    span_s = span_ns / SEC
    return {"connected": len(both), "time_to_connect_s": round(span_s, 3),
            "connect_rate": round(len(both) / span_s, 1) if span_s > 0 else None,
            "per_second": per_second, "failed": failed}


def ramp_text(r: dict[str, Any]) -> str:
    """One line: "connect ramp: 100,000 in 5.0 s (20,000/s), p99 per second 0.4-12.0 ms;
    failed: connect_timeout 3"."""
    if not r["connected"]:
        text = "connect ramp: nothing connected"
    else:
        p99s = [p["p99_ms"] for p in r["per_second"] if p["p99_ms"] is not None]
        text = (f"connect ramp: {r['connected']:,} in {r['time_to_connect_s']:.1f} s "
                f"({r['connect_rate'] or 0:,.0f}/s)")
        if p99s:
            text += f", p99 per second {min(p99s):.1f}-{max(p99s):.1f} ms"
    if r["failed"]:
        text += "; failed: " + ", ".join(f"{k} {n:,}" for k, n in r["failed"].items())
    return text
