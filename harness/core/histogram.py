"""Log-linear latency histogram, recorded with numpy a whole batch at a time.

Values are integer nanoseconds (int64). Layout ``(SUB_BITS, MAX_BITS) = (7, 43)``:

* ``0 <= v < 256`` ns: one bucket per value (exact);
* ``256 <= v < 2**43`` ns (about 2.4 h): 128 linear sub-buckets per power of two, so a
  bucket is at most 1/128 of its lower bound wide and its midpoint is within 0.4% of any
  value in it;
* ``v >= 2**43``: counted in ``overflow`` (and in ``total``, ``sum``, ``max``);
* ``v < 0``: counted in ``underflow`` only.

Percentiles take ``q`` on the 0-100 scale (never 0-1) and return float ns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

SUB_BITS = 7  # 2**SUB_BITS linear sub-buckets per power of two
MAX_BITS = 43  # values up to 2**MAX_BITS - 1 ns land in buckets
LAYOUT = (SUB_BITS, MAX_BITS)
LIMIT = 1 << MAX_BITS  # first value counted as overflow
N_BUCKETS = (MAX_BITS - SUB_BITS + 1) << SUB_BITS  # 4736
_SUM_CHUNK = 1 << 20  # 2**20 values below 2**43 cannot overflow an int64 sum
SMALL_BATCH = 16  # batches up to this size are cheaper in plain Python than in numpy
HELD_BATCH = 256  # batches up to this size are held back as a list (see Histogram.record)
HELD_MAX = 4096  # held values are bucketed, with numpy at once, when this many are waiting


def bit_length(v: npt.ArrayLike) -> np.ndarray:
    """Bits needed for each value (0 for 0); exact for 0 <= v < 2**53 (float64 frexp)."""
    return np.frexp(np.asarray(v, dtype=np.float64))[1]


def index_of(v: npt.ArrayLike) -> np.ndarray:
    """Bucket index of each value, for 0 <= v < LIMIT (values below 256 are their index)."""
    v = np.asarray(v, dtype=np.int64)
    shift = np.maximum(np.frexp(v)[1] - (SUB_BITS + 1), 0)  # frexp: bit_length, exactly
    return (shift << SUB_BITS) + (v >> shift)  # int32 shift, int64 v: an int64 index


def _shift_of(idx: np.ndarray) -> np.ndarray:
    """How far a bucket's values were shifted right to index it (its width is 2**shift)."""
    return np.maximum((idx >> SUB_BITS) - 1, 0)


def bucket_lower(idx: npt.ArrayLike) -> np.ndarray:
    """Smallest value (ns) in each bucket."""
    idx = np.asarray(idx, dtype=np.int64)
    shift = _shift_of(idx)
    return (idx - (shift << SUB_BITS)) << shift


def bucket_upper(idx: npt.ArrayLike) -> np.ndarray:
    """One past the largest value (ns) in each bucket (exclusive bound)."""
    idx = np.asarray(idx, dtype=np.int64)
    return bucket_lower(idx) + (np.int64(1) << _shift_of(idx))


def bucket_mid(idx: npt.ArrayLike) -> np.ndarray:
    """Midpoint (float ns) of the integers in each bucket; exact for one-value buckets."""
    return (bucket_lower(idx) + bucket_upper(idx) - 1) / 2


def _exact_sum(v: np.ndarray) -> int:
    """Sum of in-range values as a Python int, in chunks an int64 cannot overflow."""
    if v.size <= _SUM_CHUNK:
        return int(v.sum())
    return sum(int(v[i:i + _SUM_CHUNK].sum()) for i in range(0, v.size, _SUM_CHUNK))


class Histogram:
    """Counts of int64 ns values; a worker owns one, records batches, the parent merges.

    Small batches of in-range values are held back in a list (``total``, ``sum``, ``min``
    and ``max`` still count them at once) and bucketed together, HELD_MAX at a time or
    whenever ``counts`` is read: the same counts, without numpy's fixed cost per batch."""

    __slots__ = ("layout", "_counts", "_held", "_held_list", "_held_n", "total", "overflow",
                 "underflow", "min", "max", "sum")

    def __init__(self) -> None:
        self.layout: tuple[int, int] = LAYOUT
        self._counts = np.zeros(N_BUCKETS, dtype=np.int64)
        self._held: list[np.ndarray | list[int]] = []  # in-range values not yet in _counts
        self._held_list: list[int] = []  # those recorded as lists, the last of _held
        self._held_n = 0  # how many
        self.clear()

    @property
    def counts(self) -> np.ndarray:
        """Values per bucket (int64, N_BUCKETS), every value recorded so far included."""
        if self._held:
            self._bucket_held()
        return self._counts

    @counts.setter
    def counts(self, value: np.ndarray) -> None:
        if self._held:
            self._bucket_held()
        self._counts = value

    def _bucket_held(self) -> None:
        held = [np.asarray(c, dtype=np.int64) for c in self._held]
        np.add.at(self._counts, index_of(np.concatenate(held)), 1)
        self._held = []
        self._held_list = []
        self._held_n = 0

    def clear(self) -> None:
        self._counts.fill(0)
        self._held = []
        self._held_list = []
        self._held_n = 0
        self.total = 0  # recorded values, overflow included, underflow not
        self.overflow = 0
        self.underflow = 0
        self.min: int | None = None  # None while empty
        self.max: int | None = None
        self.sum = 0  # exact, of every value counted in total

    @property
    def bins(self) -> np.ndarray:
        """The counts array itself, without the held values (see the class): for a caller
        that buckets in-range values into it (harness.wire.fused's echo_loop) and then
        counts them with :meth:`add_bucketed`."""
        return self._counts

    def add_bucketed(self, n: int, total: int, lo: int, hi: int) -> None:
        """Count ``n`` in-range values already bucketed into :attr:`bins`: their sum,
        least and greatest."""
        self._note(n, total, lo, hi)

    def __len__(self) -> int:
        """Values recorded (overflow included, underflow not)."""
        return self.total

    def _note(self, n: int, total: int, lo: int, hi: int) -> None:
        self.total += n
        self.sum += total
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def record(self, values: npt.ArrayLike) -> None:
        """Record one batch of int64 ns values; an empty batch is a no-op.

        A batch of at most ``HELD_BATCH`` values (the usual one: a round's replies) is
        counted in plain Python (min, max and sum of a short list) and held back for
        bucketing (see the class), so a round pays no numpy call but ``tolist``. Larger
        batches use numpy at once; ``np.add.at`` beats ``bincount`` plus adding the whole
        counts array at every size (fast since numpy 1.25).
        """
        v = np.asarray(values, dtype=np.int64).ravel()
        if v.size <= HELD_BATCH:
            if v.size:
                vals = v.tolist()
                self._hold(v.copy(), vals, min(vals), max(vals))  # (the caller's may change)
            return
        lo, hi = int(v.min()), int(v.max())
        if lo < 0 or hi >= LIMIT:
            self._record_out_of_range(v)
            return
        np.add.at(self._counts, index_of(v), 1)
        self._note(v.size, _exact_sum(v), lo, hi)

    def record_list(self, vals: list[int], lo: int | None = None, hi: int | None = None
                    ) -> None:
        """Record a short non-empty list of int ns values in plain Python (no array built;
        the values are copied, the list may change after); ``lo``, ``hi``: its least and
        greatest, when the caller has them."""
        self._hold(None, vals, min(vals) if lo is None else lo, max(vals) if hi is None else hi)

    def _hold(self, chunk: np.ndarray | None, vals: list[int], lo: int, hi: int) -> None:
        """Count a short batch (``vals``; ``chunk``: the same as an array, or None) and
        hold it for bucketing."""
        if lo < 0 or hi >= LIMIT:
            self._record_out_of_range(np.asarray(vals, dtype=np.int64))
            return
        if chunk is not None:
            self._held.append(chunk)
        else:
            if not self._held_list:
                self._held.append(self._held_list)
            self._held_list += vals
        self._held_n += len(vals)
        if self._held_n >= HELD_MAX:
            self._bucket_held()
        self._note(len(vals), sum(vals), lo, hi)

    def _record_out_of_range(self, v: np.ndarray) -> None:
        negative = v < 0
        self.underflow += int(np.count_nonzero(negative))
        v = v[~negative]
        over = v >= LIMIT
        big = v[over].tolist()
        if big:
            self.overflow += len(big)
            self._note(len(big), sum(big), min(big), max(big))
        self.record(v[~over])

    def record_one(self, value: int) -> None:
        self.record_list([int(value)])  # (an array for one value costs ~2 µs more)

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other`` into this histogram; ValueError if the layouts differ."""
        if tuple(other.layout) != tuple(self.layout):
            raise ValueError(f"histogram layouts differ: {self.layout} vs {other.layout}")
        self.counts += other.counts
        self.overflow += other.overflow
        self.underflow += other.underflow
        if other.total:
            self._note(other.total, other.sum, other.min, other.max)  # type: ignore[arg-type]
        return self

    def __iadd__(self, other: Histogram) -> Histogram:
        return self.merge(other)

    def copy(self) -> Histogram:
        return Histogram().merge(self)

    def percentiles(self, qs: Sequence[float]) -> list[float | None]:
        """Values (float ns) at percentiles ``qs`` on 0-100; all None if empty.

        Rank ``ceil(q/100 * total)`` (at least 1, float arithmetic as numpy's
        ``inverted_cdf``); the answer is the midpoint of the bucket holding that rank,
        clamped to [min, max]. Overflowed values rank as ``max``; q=0 gives min, q=100 max.
        """
        q = np.asarray(qs, dtype=np.float64).ravel()
        if not np.all((q >= 0) & (q <= 100)):
            raise ValueError(f"percentiles are on 0-100, got {qs!r}")
        if self.total == 0:
            return [None] * q.size
        lo, hi = float(self.min), float(self.max)  # type: ignore[arg-type]
        ranks = np.maximum(np.ceil(q / 100 * self.total), 1).astype(np.int64)
        cum = np.cumsum(self.counts)
        idx = np.minimum(np.searchsorted(cum, ranks), N_BUCKETS - 1)
        out = np.where(ranks <= cum[-1], np.clip(bucket_mid(idx), lo, hi), hi)
        out[q == 0] = lo
        out[q == 100] = hi
        return [float(x) for x in out]

    def percentile(self, q: float) -> float | None:
        """Value (float ns) at percentile ``q`` on 0-100 (99.9 is p99.9); None if empty."""
        return self.percentiles([q])[0]

    def mean(self) -> float | None:
        """Exact mean (float ns) of the recorded values, overflow included; None if empty."""
        return self.sum / self.total if self.total else None

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-able form: only the non-zero buckets, as (idx, counts) lists."""
        nz = np.flatnonzero(self.counts)
        return {"layout": list(self.layout), "idx": nz.tolist(),
                "counts": self.counts[nz].tolist(), "total": self.total,
                "overflow": self.overflow, "underflow": self.underflow,
                "min": self.min, "max": self.max, "sum": self.sum}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Histogram:
        """Inverse of :meth:`to_dict`; ValueError on another layout or inconsistent data."""
        if tuple(d["layout"]) != LAYOUT:
            raise ValueError(f"histogram layout {d['layout']} is not {list(LAYOUT)}")
        idx = np.asarray(d["idx"], dtype=np.int64)
        counts = np.asarray(d["counts"], dtype=np.int64)
        if idx.shape != counts.shape or np.any((idx < 0) | (idx >= N_BUCKETS) | (counts < 0)):
            raise ValueError("histogram buckets out of range")
        h = cls()
        np.add.at(h._counts, idx, counts)
        h.total, h.overflow, h.underflow = int(d["total"]), int(d["overflow"]), int(d["underflow"])
        h.min, h.max, h.sum = d["min"], d["max"], int(d["sum"])
        if h.total != int(counts.sum()) + h.overflow or (h.total == 0) != (h.min is None):
            raise ValueError("histogram totals do not add up")
        return h


def from_counts(counts: np.ndarray) -> Histogram:
    """A histogram from bucket counts alone (e.g. the difference of two snapshots of one
    histogram). ``min``/``max`` are the bounds of the outermost non-empty buckets and ``sum``
    uses bucket midpoints, so the mean is approximate (within the layout's error)."""
    h = Histogram()
    h.counts = np.asarray(counts, dtype=np.int64).copy()
    nz = np.flatnonzero(h.counts)
    if len(nz):
        h.total = int(h.counts.sum())
        h.min = int(bucket_lower(nz[0]))
        h.max = int(bucket_upper(nz[-1])) - 1
        h.sum = int((bucket_mid(nz) * h.counts[nz]).sum())
    return h


def merge_all(hists: Iterable[Histogram]) -> Histogram:
    """A new histogram holding the sum of ``hists`` (empty if there are none)."""
    out = Histogram()
    for h in hists:
        out.merge(h)
    return out
