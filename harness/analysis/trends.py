"""Verdicts over time series: trend lines, recovery after a spike, soak stability.

Pure functions over plain sequences (no sockets, files or processes), used by
``aggregate`` to judge a step's per-second series and by nothing below it.

Units: time in seconds (the value at second k covers [k, k+1)), latency in ms,
throughput in msgs/s, memory in bytes; slopes per hour.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------- trend


def trend(
    xs_s: Sequence[float],
    ys: Sequence[float | None],
    *,
    rel_rise: float = 0.10,
    min_rise: float = 0.0,
    t_min: float = 3.0,
) -> dict[str, Any]:
    """Least-squares line through (seconds, value) points and a "still growing?" verdict.

    Pairs whose x or y is None/NaN/inf are dropped. With the fitted line y = a + b*x:

    * ``slope_per_h`` = b * 3600 (value units per hour);
    * ``start`` / ``end`` = the fitted values at the first and last x (not the raw points,
      so one noisy sample does not decide), ``rise`` = end - start;
    * ``noise`` = standard deviation of the residuals (n - 2 degrees of freedom);
    * ``t_stat`` = b / standard error of b.

    ``growing`` is True iff there are at least 3 points, and
    ``rise > max(rel_rise * |start|, min_rise, 2 * noise)`` (the line rose by more than
    10% of where it started, more than an absolute floor the caller may set, and more
    than twice the scatter around it, so a sawtooth is not a leak), and
    ``t_stat > t_min`` (default 3: the slope is clearly positive, not noise).
    """
    x, y = _finite_pairs(xs_s, ys)
    n = int(x.size)
    out: dict[str, Any] = {"slope_per_h": 0.0, "start": None, "end": None, "growing": False,
                           "rise": 0.0, "t_stat": 0.0, "noise": 0.0, "n": n}
    if n == 0:
        return out
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if n < 2 or sxx == 0.0:
        out["start"] = out["end"] = float(y.mean())
        return out
    slope, start, end, noise, t_stat = _fit(x, y, dx, sxx)
    rise = end - start
    floor = max(rel_rise * abs(start), min_rise, 2.0 * noise)
    out.update(
        slope_per_h=slope * 3600.0,
        start=start,
        end=end,
        rise=rise,
        t_stat=t_stat,
        noise=noise,
        growing=bool(n >= 3 and rise > floor and t_stat > t_min),
    )
    return out


def _fit(x: np.ndarray, y: np.ndarray, dx: np.ndarray, sxx: float
         ) -> tuple[float, float, float, float, float]:
    """The least-squares line through (x, y), ``dx`` = x - mean(x), ``sxx`` = dx @ dx > 0:
    (slope, fitted start, fitted end, noise, t_stat); noise and t_stat 0 for two points."""
    n = int(x.size)
    slope = float(dx @ (y - y.mean())) / sxx
    fitted = y.mean() + slope * dx
    start, end = float(fitted[np.argmin(x)]), float(fitted[np.argmax(x)])
    noise, t_stat = 0.0, 0.0
    if n > 2:
        resid = y - fitted
        noise = math.sqrt(float(resid @ resid) / (n - 2))
        t_stat = _t_stat(slope, noise / math.sqrt(sxx))
    return slope, start, end, noise, t_stat


def _finite_pairs(xs_s: Sequence[float], ys: Sequence[float | None]) -> tuple[np.ndarray, ...]:
    if len(xs_s) != len(ys):
        raise ValueError(f"xs_s and ys differ in length ({len(xs_s)} != {len(ys)})")
    x = np.asarray([math.nan if v is None else v for v in xs_s], dtype=np.float64)
    y = np.asarray([math.nan if v is None else v for v in ys], dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _t_stat(slope: float, stderr: float) -> float:
    """slope / stderr; an exact fit (stderr 0) gives +-inf for a non-zero slope, else 0."""
    if stderr > 0.0:
        return slope / stderr
    if slope == 0.0:
        return 0.0
    return math.copysign(math.inf, slope)


# ---------------------------------------------------------------------------- spike recovery


def recovery_time(seconds: Sequence[float], p99_ms: Sequence[float | None],
                  throughput: Sequence[float], spike_start: float, spike_end: float,
                  band: float = 0.25, hold: int = 2) -> dict[str, Any]:
    """How long after a spike the service is back to its baseline, in seconds.

    Per-second series (the point at second k covers [k, k+1)). Baseline: the median p99
    (ms, None ignored) and median throughput (msgs/s) over the points wholly before
    ``spike_start``. After ``spike_end``, a point is *healthy* when its p99 is not None and
    <= baseline * (1 + band) and its throughput >= baseline * (1 - band). ``recovery_s`` is
    ``k - spike_end`` for the first point k >= ``spike_end`` that starts ``hold``
    consecutive healthy points (consecutive = one second apart). ``recovered`` is False
    (``recovery_s`` None) when the series ends first or there is no baseline (``note``).
    """
    if not len(seconds) == len(p99_ms) == len(throughput):
        raise ValueError("seconds, p99_ms and throughput must have the same length")
    if spike_end < spike_start or hold < 1 or band < 0:
        raise ValueError("need spike_start <= spike_end, hold >= 1 and band >= 0")
    points = sorted(zip(seconds, p99_ms, throughput, strict=True), key=lambda p: p[0])
    before = [p for p in points if p[0] + 1 <= spike_start]
    base_p99 = [p[1] for p in before if p[1] is not None]
    out: dict[str, Any] = {"recovered": False, "recovery_s": None, "baseline_p99_ms": None,
                           "baseline_throughput": None, "band": band, "note": None}
    if not base_p99:
        out["note"] = "no p99 samples before the spike: no baseline"
        return out
    p99_limit = statistics.median(base_p99) * (1 + band)
    tp_base = statistics.median(p[2] for p in before)
    out.update(baseline_p99_ms=statistics.median(base_p99), baseline_throughput=tp_base)
    run_start, run_len, prev = None, 0, None
    for k, p99, tp in (p for p in points if p[0] >= spike_end):
        healthy = p99 is not None and p99 <= p99_limit and tp >= tp_base * (1 - band)
        if not healthy:
            run_start, run_len = None, 0
        elif run_start is None or prev is None or abs(k - prev - 1) > 1e-9:
            run_start, run_len = k, 1
        else:
            run_len += 1
        prev = k
        if run_start is not None and run_len >= hold:
            out.update(recovered=True, recovery_s=float(run_start - spike_end))
            return out
    out["note"] = f"not {hold} consecutive healthy seconds after the spike"
    return out


# ---------------------------------------------------------------------------- soak verdict


def soak_verdict(seconds: Sequence[float], p99_ms: Sequence[float | None],
                 rss_s: Sequence[float] | None,
                 rss_bytes: Sequence[float] | None) -> dict[str, Any]:
    """Is a long run stable? Trend lines (``monitor.trend``) of p99 (ms per second of the
    run) and, when sampled, of the server's RSS (bytes at ``rss_s`` seconds).

    ``verdict`` is "stable", "p99 growing", "memory growing" or "p99 and memory growing";
    ``memory_trend`` is None when no RSS series was given.
    """
    p99_trend = trend(seconds, p99_ms)
    mem_trend = trend(rss_s, rss_bytes) if rss_s is not None and rss_bytes is not None else None
    p99_growing = bool(p99_trend["growing"])
    mem_growing = bool(mem_trend is not None and mem_trend["growing"])
    verdict = {(False, False): "stable", (True, False): "p99 growing",
               (False, True): "memory growing",
               (True, True): "p99 and memory growing"}[(p99_growing, mem_growing)]
    return {"p99_trend": p99_trend, "memory_trend": mem_trend, "p99_growing": p99_growing,
            "memory_growing": mem_growing, "verdict": verdict}
