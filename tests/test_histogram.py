"""Tests for harness.core.histogram with synthetic arrays (no timing assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.core.histogram import (
    HELD_MAX,
    LAYOUT,
    LIMIT,
    MAX_BITS,
    N_BUCKETS,
    SUB_BITS,
    Histogram,
    bucket_lower,
    bucket_mid,
    bucket_upper,
    index_of,
    merge_all,
)

QS = [50, 90, 99, 99.9, 100]


def ref_index(v: int) -> int:
    """The layout's index written out with Python ints, as the module docstring states it."""
    if v < 1 << (SUB_BITS + 1):
        return v
    shift = v.bit_length() - (SUB_BITS + 1)
    return (shift << SUB_BITS) + (v >> shift)


def sample(kind: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.integers(0, 10**9, n)
    if kind == "lognormal":  # median 100 µs, a tail reaching seconds
        v = rng.lognormal(np.log(100_000), 1.5, n)
        return np.minimum(v, LIMIT - 1).astype(np.int64)
    if kind == "constant":
        return np.full(n, 123_456_789, dtype=np.int64)
    if kind == "small":
        return rng.integers(0, 256, n)
    raise AssertionError(kind)


# --- index math -------------------------------------------------------------------------

def test_index_dense_prefix_is_continuous_and_monotone() -> None:
    v = np.arange(1 << 20, dtype=np.int64)
    idx = index_of(v)
    assert idx[0] == 0
    assert np.all(np.diff(idx) >= 0)
    assert np.all(np.diff(idx) <= 1)
    assert np.array_equal(idx[:256], v[:256])


def test_index_exact_at_powers_of_two() -> None:
    vals = sorted({x for k in range(MAX_BITS + 1) for x in (2**k - 1, 2**k, 2**k + 1)
                   if 0 <= x < LIMIT})
    got = index_of(np.array(vals, dtype=np.int64))
    assert got.tolist() == [ref_index(x) for x in vals]
    for k in range(1, MAX_BITS):
        assert index_of(2**k) - index_of(2**k - 1) == 1  # 2**k always opens a bucket
        assert bucket_lower(index_of(2**k)) == 2**k
    assert index_of(LIMIT - 1) == N_BUCKETS - 1


def test_index_matches_reference_on_random_values() -> None:
    rng = np.random.default_rng(7)
    v = (2.0 ** rng.uniform(0, MAX_BITS, 20_000)).astype(np.int64)
    v = np.minimum(v, LIMIT - 1)
    assert index_of(v).tolist() == [ref_index(int(x)) for x in v]


def test_buckets_tile_the_whole_range() -> None:
    idx = np.arange(N_BUCKETS)
    lower, upper = bucket_lower(idx), bucket_upper(idx)
    assert lower[0] == 0
    assert upper[-1] == LIMIT
    assert np.array_equal(lower[1:], upper[:-1])  # contiguous, no gaps or overlaps
    assert np.array_equal(index_of(lower), idx)
    assert np.array_equal(index_of(upper - 1), idx)
    wide = lower >= 256
    assert np.all((upper - lower)[wide] * 128 <= lower[wide])
    half_error = (upper - 1 - lower) / 2 / np.maximum(lower, 1)
    assert half_error.max() <= 1 / 256
    assert np.array_equal(bucket_mid(idx[:256]), idx[:256])


def test_values_fall_inside_their_bucket() -> None:
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.integers(0, LIMIT, 50_000), np.arange(0, 5000)])
    i = index_of(v)
    assert np.all(bucket_lower(i) <= v)
    assert np.all(v < bucket_upper(i))


# --- percentiles ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uniform", "lognormal", "constant", "small"])
@pytest.mark.parametrize("n", [1000, 100_000])
def test_percentiles_match_numpy(kind: str, n: int) -> None:
    v = sample(kind, n)
    h = Histogram()
    for batch in np.array_split(v, max(1, n // 1600)):
        h.record(batch)
    got = h.percentiles(QS)
    want = np.percentile(v, QS, method="inverted_cdf")
    rel = 0 if kind == "small" else 0.01
    for q, g, w in zip(QS, got, want, strict=True):
        assert g == pytest.approx(float(w), rel=rel, abs=0), q
    assert h.percentile(100) == v.max()
    assert h.percentile(0) == v.min()
    assert h.mean() == pytest.approx(float(v.astype(np.float64).mean()), rel=1e-12)


def test_percentile_scale_is_0_to_100() -> None:
    h = Histogram()
    h.record(np.arange(1, 101))
    assert h.percentile(50) == 50
    assert h.percentile(1) == 1
    with pytest.raises(ValueError):
        h.percentile(101)
    with pytest.raises(ValueError):
        h.percentile(-0.5)
    with pytest.raises(ValueError):
        h.percentiles([50, float("nan")])


def test_empty_histogram() -> None:
    h = Histogram()
    h.record(np.array([], dtype=np.int64))
    assert len(h) == 0
    assert h.percentile(50) is None
    assert h.percentiles([50, 99]) == [None, None]
    assert h.mean() is None
    assert h.min is None and h.max is None


# --- merging ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uniform", "lognormal", "small"])
def test_merge_of_parts_equals_whole(kind: str) -> None:
    v = sample(kind, 50_000, seed=11)
    v[:3] = [-4, LIMIT, LIMIT + 99]  # out-of-range values must merge too
    whole = Histogram()
    whole.record(v)
    part_of = np.random.default_rng(5).integers(0, 4, v.size)
    parts = [Histogram() for _ in range(4)]
    for p, h in enumerate(parts):
        for batch in np.array_split(v[part_of == p], 7):
            h.record(batch)
    merged = merge_all(parts)
    assert np.array_equal(merged.counts, whole.counts)
    assert merged.to_dict() == whole.to_dict()
    assert merged.percentiles(QS) == whole.percentiles(QS)
    acc = parts[0].copy()
    for h in parts[1:]:
        acc += h
    assert acc.to_dict() == whole.to_dict()
    assert sum(h.total for h in parts) == whole.total == v.size - 1


def test_merge_refuses_mismatched_layout() -> None:
    a, b = Histogram(), Histogram()
    b.layout = (SUB_BITS + 1, MAX_BITS)
    with pytest.raises(ValueError):
        a.merge(b)
    with pytest.raises(ValueError):
        a += b
    d = Histogram().to_dict()
    d["layout"] = [SUB_BITS, MAX_BITS + 1]
    with pytest.raises(ValueError):
        Histogram.from_dict(d)


def test_merge_all_of_nothing_is_empty() -> None:
    assert len(merge_all([])) == 0


# --- out of range -----------------------------------------------------------------------

def test_overflow_and_underflow_are_counted() -> None:
    h = Histogram()
    h.record(np.array([-5, -1, 10, LIMIT, 2**50], dtype=np.int64))
    assert (h.underflow, h.overflow, h.total, len(h)) == (2, 2, 3, 3)
    assert int(h.counts.sum()) == 1
    assert (h.min, h.max) == (10, 2**50)
    assert h.sum == 10 + LIMIT + 2**50
    assert h.mean() == (10 + LIMIT + 2**50) / 3
    assert h.percentile(30) == 10  # rank 1
    assert h.percentile(50) == 2**50  # rank 2 is an overflowed value: reported as max
    assert h.percentile(100) == 2**50


def test_only_negative_values() -> None:
    h = Histogram()
    h.record(np.array([-1, -2], dtype=np.int64))
    assert (h.underflow, h.total, h.min, h.max) == (2, 0, None, None)
    assert h.percentile(50) is None


def test_sum_is_exact_beyond_int64() -> None:
    h = Histogram()
    n = (1 << 21) + 3
    h.record(np.full(n, LIMIT - 1, dtype=np.int64))
    assert h.sum == n * (LIMIT - 1)  # more than 2**63
    assert h.percentile(50) == LIMIT - 1


# --- the rest of the API ----------------------------------------------------------------

def test_dict_round_trip() -> None:
    h = Histogram()
    h.record(sample("lognormal", 20_000, seed=2))
    h.record(np.array([-3, LIMIT + 1], dtype=np.int64))
    d = json.loads(json.dumps(h.to_dict()))
    assert d["layout"] == list(LAYOUT)
    assert len(d["idx"]) == len(d["counts"]) == int(np.count_nonzero(h.counts))
    back = Histogram.from_dict(d)
    assert np.array_equal(back.counts, h.counts)
    assert back.to_dict() == h.to_dict()
    assert back.percentiles(QS) == h.percentiles(QS)
    d["total"] += 1
    with pytest.raises(ValueError):
        Histogram.from_dict(d)
    empty = Histogram.from_dict(Histogram().to_dict())
    assert len(empty) == 0 and empty.min is None


def test_record_one_copy_clear() -> None:
    h = Histogram()
    for x in (5, 300, 7):
        h.record_one(x)
    c = h.copy()
    h.clear()
    assert len(h) == 0 and not h.counts.any() and h.max is None
    assert (len(c), c.min, c.max, c.sum) == (3, 5, 300, 312)


def test_small_batches_held_back_give_the_counts_of_one_numpy_record() -> None:
    """Small batches are held back and bucketed later (HELD_MAX at a time, or when counts
    are read): counts, totals and bounds are those of recording everything at once, a
    batch changed by its caller after recording counts as recorded, and values recorded
    after a read of counts are not lost."""
    rng = np.random.default_rng(11)
    whole, parts = Histogram(), Histogram()
    values: list[np.ndarray] = []
    for k in range(3 * HELD_MAX // 50):
        v = rng.integers(0, 10**9, int(rng.integers(1, 60)))
        values.append(v.copy())
        if k % 3:
            parts.record(v)
            v[:] = 0  # the caller reuses its array: what was recorded stays
        else:
            parts.record_list(v.tolist())
        if k == 40:
            assert parts.counts.sum() == sum(len(x) for x in values)  # a read mid-way
    whole.record(np.concatenate(values))
    assert np.array_equal(parts.counts, whole.counts)
    assert (parts.total, parts.sum, parts.min, parts.max) == \
        (whole.total, whole.sum, whole.min, whole.max)
    assert Histogram.from_dict(parts.to_dict()).percentiles([50, 99]) == \
        whole.percentiles([50, 99])
