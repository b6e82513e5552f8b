"""The statistical tests a comparison of two runs applies, on histograms of one layout
(values in ns) and on per-second counts: the distribution-free confidence interval of a
percentile, Mann-Whitney U with its effect size, a two-proportion z-test and a seeded
permutation test. Why these tests: see harness.analysis.compare."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.core.histogram import Histogram, bucket_lower, bucket_upper

Z = 2.5758293035489004  # two-sided 99% of a normal


PERMUTATIONS = 2000


def _cumulative(h: Histogram) -> np.ndarray:
    return np.cumsum(h.counts)


def value_at_rank(h: Histogram, rank: int, upper: bool) -> float:
    """The lower (or upper) edge, ns, of the bucket holding the ``rank``-th value (1-based),
    clamped to the histogram's min and max; a rank among the overflow is the max."""
    cum = _cumulative(h)
    if rank > cum[-1]:
        return float(h.max)  # type: ignore[arg-type]
    idx = int(np.searchsorted(cum, rank))
    edge = bucket_upper(idx) - 1 if upper else bucket_lower(idx)
    return float(min(max(int(edge), h.min or 0), h.max or 0))


def quantile_ci(h: Histogram, q: float, samples: float | None = None, z: float = Z
                ) -> tuple[float, float]:
    """The distribution-free confidence interval (ns) of percentile ``q`` (0-100): the
    values at the quantiles ``p -/+ z sqrt(p(1-p)/m)`` (order statistics of a binomial
    count) of ``m = samples`` independent samples (default: every value), bucket edges
    taken outward."""
    n = h.total
    m = float(samples or n)
    p = q / 100.0
    half = z * math.sqrt(p * (1.0 - p) / m)
    lo = max(int(math.floor((p - half) * n)), 1)
    hi = min(int(math.ceil((p + half) * n)) + 1, n)
    return value_at_rank(h, lo, upper=False), value_at_rank(h, hi, upper=True)


def _binned(h: Histogram) -> np.ndarray:
    """Counts per bucket, overflow as one last bucket (above every other value)."""
    return np.append(h.counts, h.overflow)


def mann_whitney(base: Histogram, new: Histogram, design: float = 1.0) -> tuple[float, float]:
    """(A, two-sided p) of Mann-Whitney U on two histograms of one layout. A is the
    Vargha-Delaney effect size P(new > base) + P(tie)/2 (0.5: no shift); ties are values
    in one bucket. Normal approximation with the tie correction, its variance times
    ``design`` (values per independent sample, see :func:`independent`)."""
    a, b = _binned(base).astype(np.float64), _binned(new).astype(np.float64)
    n1, n2 = a.sum(), b.sum()
    below = np.cumsum(a) - a  # base values in lower buckets
    u = float((b * (below + a / 2.0)).sum())  # pairs where new > base, ties half
    effect = u / (n1 * n2)
    t = a + b
    n = n1 + n2
    var = n1 * n2 / 12.0 * ((n + 1) - float((t**3 - t).sum()) / (n * (n - 1)))
    if var <= 0:
        return effect, 1.0
    zscore = (u - n1 * n2 / 2.0) / math.sqrt(var * max(design, 1.0))
    return effect, math.erfc(abs(zscore) / math.sqrt(2.0))


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of a pooled two-proportion z-test (1.0 when nothing can differ)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 1.0
    z = (k2 / n2 - k1 / n1) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2.0))


def permutation_p(x: Sequence[float], y: Sequence[float], seed: int = 1) -> float:
    """Two-sided p of a permutation test on the difference of means (seeded)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = np.concatenate([xs, ys])
    observed = abs(ys.mean() - xs.mean())
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((PERMUTATIONS, both.size)), axis=1)
    perm = both[idx]
    diffs = np.abs(perm[:, xs.size:].mean(axis=1) - perm[:, :xs.size].mean(axis=1))
    return float((np.count_nonzero(diffs >= observed - 1e-12) + 1) / (PERMUTATIONS + 1))
