"""Compare two runs, BASE and NEW, step by step (matched by load), from their run.json
documents and per-second series. Pure functions: no files, no sockets.

Every figure (latency p50, p90, p99, p99.9 and max in ms; throughput in msgs/s; the error
rate as a fraction of messages; lost messages) gets its change and a verdict:

- ``regression``: worse, statistically significant, and beyond its limit;
- ``worse`` / ``better``: significant and at least ``FLOOR`` (1%, the histogram's
  resolution), but within the limit (or the figure has none);
- ``same``: not significant, or smaller than the floor;
- ``untested``: no test applies (the max is one sample; a percentile with fewer than
  ``MIN_BEYOND`` independent samples beyond it; throughput of runs with fewer than
  ``MIN_SECONDS`` whole seconds), or the step is not judged: in either run it was
  client-bound, on a shared core or cut short (as in a sweep's verdict). Never a regression;
  a step not judged keeps the verdict its tests gave as ``would_be``, and the document lists
  the regressions they would have been as ``would_fail``. With no step judged the comparison
  is ``inconclusive`` (exit 4), never "no regression".

The tests, all at ``ALPHA`` (1%):

- Percentiles: the distribution-free confidence interval of a quantile from order
  statistics (the ranks ``nq -/+ z sqrt(nq(1-q))`` of a binomial), read off each
  histogram with bucket edges taken outward. A change is significant when the two
  intervals do not overlap. It needs no assumption about the shape of the distribution
  (latency is skewed, multi-modal, heavy-tailed), tests the very figure reported (a tail
  percentile can move while the median stays), and is exact on binned data.
- The whole latency distribution: Mann-Whitney U from the two histograms (ties within a
  bucket get mid-ranks), with the Vargha-Delaney effect size A = P(new > base) + P(tie)/2
  and its floor ``MIN_A`` (0.56, "small"): reported as ``shift``.
- Throughput: a permutation test on the whole seconds' reply counts (seeded, so a
  comparison is reproducible).
- Error rate and lost messages: a two-proportion z-test over messages sent.

On millions of samples a 0.5% shift is significant; the limits (``--max-regression``, by
default ``DEFAULT_LIMITS``) are the effect-size floor that keeps it from being a
regression. Latency and throughput limits are relative changes (0.1 = 10%); the error rate
limit is an absolute rise of the rate (0.001 = 0.1 percentage point); the lost limit is a
count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from harness.analysis import bottleneck, judge
from harness.analysis.merge import LOAD_KEYS, MergeError, check_metadata
from harness.analysis.stats import mann_whitney, permutation_p, quantile_ci, two_proportions
from harness.core.histogram import Histogram

ALPHA = 0.01
FLOOR = 0.01
MIN_A = 0.56
MIN_SECONDS = 5
MIN_BEYOND = 5.0  # independent samples beyond a percentile needed to test it
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
FIGURES = ("p50", "p90", "p99", "p999", "max", "throughput", "errors", "lost")
LIMITED = tuple(f for f in FIGURES if f != "max")  # the max is one sample: nothing to test
HIGHER_IS_WORSE = {f: f != "throughput" for f in FIGURES}
DEFAULT_LIMITS: dict[str, float] = {"p50": 0.10, "p90": 0.15, "p99": 0.25, "p999": 0.50,
                                    "throughput": 0.10, "errors": 0.001, "lost": 0}


class CompareError(ValueError):
    """Runs that cannot be compared (one line saying why)."""


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of one step in both runs. ``change`` is relative for latency and
    throughput, an absolute difference for the error rate (fraction) and lost (count)."""

    figure: str
    unit: str
    base: float | None
    new: float | None
    change: float | None
    verdict: str
    test: str
    p_value: float | None = None
    limit: float | None = None
    would_be: str | None = None  # a step not judged: the verdict its tests gave

    def to_json(self) -> dict[str, Any]:
        out = {"figure": self.figure, "unit": self.unit, "base": self.base, "new": self.new,
               "change": self.change, "verdict": self.verdict, "test": self.test,
               "p_value": self.p_value, "limit": self.limit}
        if self.would_be is not None:
            out["would_be"] = self.would_be
        return out


# ---------------------------------------------------------------------------- samples


def independent(step: dict, inflight: int) -> float:
    """How many independent samples a step's latency histogram holds: its values over the
    messages in flight at once (connections x inflight). Messages in flight together meet
    the same stall (a scheduler hiccup, a GC pause, a retransmit), so their latencies rise
    and fall together: counting each as a sample would make the intervals far too narrow,
    and call run-to-run noise in the tail a change."""
    together = max(int(step.get("conns") or 1) * max(inflight, 1), 1)
    return max(len(_hist(step)) / together, 1.0)


# ---------------------------------------------------------------------------- verdicts


def _relative(base: float | None, new: float | None) -> float | None:
    if base is None or new is None:
        return None
    if base == 0:
        return 0.0 if new == 0 else math.inf
    return (new - base) / base


def _verdict(name: str, change: float | None, significant: bool | None,
             limit: float | None) -> str:
    if change is None:
        return "same"
    worse = change > 0 if HIGHER_IS_WORSE[name] else change < 0
    beyond = limit is not None and abs(change) > limit and worse
    if significant is None:
        return "untested"
    if not significant or abs(change) < (FLOOR if name not in ("errors", "lost") else 0):
        return "same"
    if beyond:
        return "regression"
    return "worse" if worse else "better"


def _percentile_figures(b: Histogram, n: Histogram, samples: tuple[float, float],
                        limits: dict[str, float]) -> list[Figure]:
    out = []
    for name, q in PERCENTILES:
        vb, vn = b.percentile(q), n.percentile(q)
        if vb is None or vn is None:
            out.append(Figure(name, "ms", _ms(vb), _ms(vn), None, "same", "no samples"))
            continue
        change = _relative(vb, vn)
        beyond = min(samples) * (1.0 - q / 100.0)
        if beyond < MIN_BEYOND:
            out.append(Figure(name, "ms", _ms(vb), _ms(vn), _round(change), "untested",
                              f"none ({beyond:.1f} independent samples beyond it: too few)",
                              limit=limits.get(name)))
            continue
        lo_b, hi_b = quantile_ci(b, q, samples[0])
        lo_n, hi_n = quantile_ci(n, q, samples[1])
        significant = lo_n > hi_b or hi_n < lo_b
        out.append(Figure(name, "ms", _ms(vb), _ms(vn), _round(change),
                          _verdict(name, change, significant, limits.get(name)),
                          "quantile CI 99% (order statistics)", limit=limits.get(name)))
    change = _relative(b.max, n.max)
    out.append(Figure("max", "ms", _ms(b.max), _ms(n.max), _round(change), "untested",
                      "none (one sample)"))
    return out


def _throughput(sb: dict, sn: dict, series: tuple[dict, dict], limit: float | None) -> Figure:
    vb, vn = sb["throughput_msgs_s"], sn["throughput_msgs_s"]
    change = _relative(vb, vn)
    xb, xn = (_whole_seconds(s, c) for s, c in zip((sb, sn), series, strict=True))
    if len(xb) >= MIN_SECONDS and len(xn) >= MIN_SECONDS:
        p = permutation_p(xb, xn)
        return Figure("throughput", "msgs/s", vb, vn, _round(change),
                      _verdict("throughput", change, p < ALPHA, limit),
                      "permutation test on whole seconds", _round(p), limit)
    return Figure("throughput", "msgs/s", vb, vn, _round(change),
                  _verdict("throughput", change, None, limit),
                  f"none (fewer than {MIN_SECONDS} whole seconds)", limit=limit)


def _whole_seconds(step: dict, cols: dict) -> list[int]:
    """Replies per whole second of the measure window (the last, partial one left out)."""
    seconds, received = cols.get("second") or [], cols.get("received") or []
    whole = int(step.get("duration_s") or 0)
    return [r for s, r in zip(seconds, received, strict=False) if int(s) < whole]


def _failed(s: dict) -> int:
    expected = s.get("deliveries_expected") or s["sent"]
    return round(judge.error_rate(s) * max(expected, 1))


def _errors(sb: dict, sn: dict, limits: dict[str, float]) -> list[Figure]:
    nb, nn = (s.get("deliveries_expected") or s["sent"] for s in (sb, sn))
    rb, rn = judge.error_rate(sb), judge.error_rate(sn)
    p = two_proportions(_failed(sb), nb, _failed(sn), nn)
    errors = Figure("errors", "rate", round(rb, 6), round(rn, 6), round(rn - rb, 6),
                    _verdict("errors", rn - rb, p < ALPHA, limits.get("errors")),
                    "two-proportion z-test", _round(p), limits.get("errors"))
    lb, ln = sb["lost"], sn["lost"]
    p = two_proportions(lb, nb, ln, nn)
    lost = Figure("lost", "messages", lb, ln, ln - lb,
                  _verdict("lost", ln - lb, p < ALPHA, limits.get("lost")),
                  "two-proportion z-test", _round(p), limits.get("lost"))
    return [errors, lost]


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 6)


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def shift(b: Histogram, n: Histogram, samples: tuple[float, float] = (0.0, 0.0)
          ) -> dict[str, Any]:
    """The whole latency distribution: Mann-Whitney's effect size and p, and a verdict."""
    if not b.total or not n.total:
        return {"a": None, "p_value": None, "verdict": "same"}
    design = max(b.total / max(samples[0], 1.0), n.total / max(samples[1], 1.0))
    a, p = mann_whitney(b, n, design if any(samples) else 1.0)
    big = abs(a - 0.5) >= MIN_A - 0.5
    verdict = ("worse" if a > 0.5 else "better") if p < ALPHA and big else "same"
    return {"a": round(float(a), 4), "p_value": _round(p), "verdict": verdict}


# ---------------------------------------------------------------------------- steps


def load_of(step: dict) -> tuple:
    return tuple(step.get(k) for k in LOAD_KEYS)


def load_label(step: dict) -> str:
    label = f"{step['conns']} conns"
    if step.get("rate"):
        label += f" @{step['rate']:g}/s"
    if step.get("messages") is not None:
        label += f" x{step['messages']}"
    return label


def match_steps(base: list[dict], new: list[dict]) -> tuple[list[tuple[int, int]], list[str]]:
    """Pairs (base index, new index) of steps of one load (the k-th step of a load in one
    run with the k-th of that load in the other), and a line per step left unmatched."""
    pairs, unmatched = [], []
    used: set[int] = set()
    for i, s in enumerate(base):
        j = next((j for j, t in enumerate(new) if j not in used and load_of(t) == load_of(s)),
                 None)
        if j is None:
            unmatched.append(f"base step {i} ({load_label(s)}) has no match in new")
        else:
            used.add(j)
            pairs.append((i, j))
    unmatched += [f"new step {j} ({load_label(t)}) has no match in base"
                  for j, t in enumerate(new) if j not in used]
    return pairs, unmatched


def check(base: dict, new: dict, force: bool) -> list[str]:
    """Refuse runs that differ in workload, framing, size, pacing or step loads (naming the
    difference); with ``force`` those become warnings. Runs without histograms are refused
    always."""
    warnings = []
    try:
        check_metadata([base, new], names=["base", "new"])
    except MergeError as exc:
        if not force:
            raise CompareError(f"{exc} (--force compares the steps that match)") from None
        warnings.append(str(exc))
    for name, doc in (("base", base), ("new", new)):
        if any("histograms" not in s for s in doc["steps"]):
            raise CompareError(f"{name}: a run.json without histograms (was it --json "
                               "output rather than run.json?)")
        if doc.get("partial"):
            warnings.append(f"{name} is a partial run (cut short)")
    pairs, unmatched = match_steps(base["steps"], new["steps"])
    if unmatched and not force:
        raise CompareError(f"runs differ in step loads: {unmatched[0]} "
                           "(--force compares the steps that match)")
    if not pairs:
        raise CompareError("no step of one load in both runs: nothing to compare")
    return warnings + unmatched


def _hist(step: dict, key: str = "latency") -> Histogram:
    d = step["histograms"].get(key)
    return Histogram.from_dict(d) if d else Histogram()


_SKIP_NOTE = ("{why}: it measured the client or a busy machine, not the server, so no "
              "change of this step is judged")


def compare_step(sb: dict, sn: dict, series: tuple[dict, dict], limits: dict[str, float],
                 inflight: tuple[int, int] = (1, 1)) -> dict[str, Any]:
    try:
        b, n = _hist(sb), _hist(sn)
        samples = (independent(sb, inflight[0]), independent(sn, inflight[1]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CompareError(f"step {load_label(sb)}: a latency histogram is corrupt ({exc})"
                           ) from None
    figures = [*_percentile_figures(b, n, samples, limits),
               _throughput(sb, sn, series, limits.get("throughput")), *_errors(sb, sn, limits)]
    why = [f"{name} step {bottleneck.step_skipped(s)}" for name, s in (("base", sb), ("new", sn))
           if bottleneck.step_skipped(s)]
    if why:  # it measured the client or a busy machine: no verdict, as in a sweep's
        figures = [replace(f, verdict="untested", test=f"not judged: {', '.join(why)}",
                           would_be=f.verdict) for f in figures]
    notes = [_SKIP_NOTE.format(why=w) for w in why]
    return {"load": dict(zip(LOAD_KEYS, load_of(sb), strict=True)), "label": load_label(sb),
            "judged": not why,
            "figures": [f.to_json() for f in figures], "shift": shift(b, n, samples),
            "notes": notes, "samples": {"base": b.total, "new": n.total}}


def compare_runs(base: dict, new: dict, series: tuple[list[dict], list[dict]] | None = None,
                 limits: dict[str, float] | None = None, force: bool = False,
                 names: tuple[str, str] = ("base", "new")) -> dict[str, Any]:
    """The comparison document (what ``compare --json`` prints). ``series[r][k]``: run r's
    per-second columns of step k (may be empty). ``limits``: None for DEFAULT_LIMITS."""
    limits = dict(DEFAULT_LIMITS) if limits is None else dict(limits)
    warnings = check(base, new, force)
    pairs, _ = match_steps(base["steps"], new["steps"])
    series = series or ([], [])
    steps = []
    for i, j in pairs:
        cols = (_at(series[0], i), _at(series[1], j))
        inflight = (_inflight(base), _inflight(new))
        steps.append(dict(compare_step(base["steps"][i], new["steps"][j], cols, limits,
                                       inflight),
                          base_step=i, new_step=j))
    regressions = [f"{s['label']}: {regression_line(f)}" for s in steps for f in s["figures"]
                   if f["verdict"] == "regression"]
    would_fail = [f"{s['label']}: {regression_line(f)}" for s in steps for f in s["figures"]
                  if f.get("would_be") == "regression"]
    judged = sum(s["judged"] for s in steps)
    if not judged:
        warnings.append("no step could be judged: every matched step measured the client or "
                        "a busy machine (client-bound, shared core or cut short)")
    return {"base": names[0], "new": names[1], "limits": limits, "alpha": ALPHA,
            "steps": steps, "judged": judged, "regressions": regressions,
            "regressed": bool(regressions), "inconclusive": not judged,
            "would_fail": would_fail, "warnings": warnings}


def _inflight(doc: dict) -> int:
    """Messages outstanding per connection: --inflight in closed loop, 1 in open loop."""
    pacing = (doc.get("config") or {}).get("pacing") or {}
    value = pacing.get("inflight") if not pacing.get("rate") else 1
    return value if isinstance(value, int) and value > 0 else 1


def _at(items: list, k: int) -> dict:
    return items[k] if k < len(items) else {}


def regression_line(f: dict) -> str:
    if f["figure"] in ("errors", "lost"):
        shown = (f"{f['base']:.4%} -> {f['new']:.4%}" if f["figure"] == "errors"
                 else f"{f['base']} -> {f['new']}")
        limit = f"{f['limit']:.4%}" if f["figure"] == "errors" else f"{f['limit']:g}"
        return f"{f['figure']} {shown} (rise over the limit of {limit})"
    unit = f" {f['unit']}"
    change = "n/a" if f["change"] is None else f"{f['change']:+.1%}"
    digits = 1 if f["figure"] == "throughput" else 3
    return (f"{f['figure']} {change} ({f['base']:.{digits}f} -> {f['new']:.{digits}f}{unit}), "
            f"beyond the limit of {f['limit']:.0%}")
