"""The open loop's schedule: each connection's send instants on a grid of phases
(:func:`phase_grid`, :func:`phases`), and :class:`DueWheel`, which finds the connections with
an instant due without looking at them all. numpy only; no clock of its own."""

from __future__ import annotations

import numpy as np

from harness.core.units import SEC
from harness.wire.twins import wheel_candidates, wheel_next

PHASE_GRID_NS = 500_000  # open-loop phases are multiples of at least this
PHASE_GRID_MAX_NS = 2_000_000  # ... and of at most this
PER_INSTANT = 16  # messages a send instant should carry (its fixed cost is ~100 µs)


class DueWheel:
    """Open loop: which connections may have a message due, without looking at them all.

    Connection i's instants are ``base + phase[i] + k * period``: their offset in the period
    is ``phase[i] % period`` whatever k. The connections sorted by that offset, and ``seen``
    (ns up to which every instant was handed out), make the candidates of a round a slice
    or two of that order: those with an instant in ``(seen, now]``. Connections that still
    owe messages after a round (blocked, a burst capped, joined mid-run) are ``laggards``,
    candidates every round until they catch up. A candidate may owe nothing (its first
    instant is a period later, or it is ahead): the pacer computes what each one owes, so a
    candidate too many costs a little, one too few would lose a send; none is."""

    def __init__(self, phase: np.ndarray, period: int, base: int) -> None:
        off = phase % period
        self.order = np.argsort(off, kind="stable")
        self.offs = off[self.order]
        self.period = period
        self.base = base
        self.seen = base - 1  # ns: every instant up to here has been a candidate
        self.laggards = np.zeros(0, dtype=np.int64)

    def candidates(self, now: int) -> np.ndarray:
        """Connections with an instant in ``(seen, now]``, and the laggards; sorted, unique."""
        cand, self.seen = wheel_candidates(self.order, self.offs, self.period, self.base, self.seen,
                                     now, self.laggards)
        return cand

    def next_instant(self) -> int:
        """ns of the first instant after ``seen`` (of some connection, live or not)."""
        return wheel_next(self.offs, self.period, self.base, self.seen)

    def join(self, i: int) -> None:
        """Connection ``i`` (re)joined: a candidate from the next round on."""
        self.laggards = np.append(self.laggards, i)


def phase_grid(n: int, rate: float) -> int:
    """ns between the open loop's send instants for ``n`` connections at ``rate`` msgs/s
    each: PER_INSTANT messages an instant, bounded by PHASE_GRID_NS and PHASE_GRID_MAX_NS.
    Each instant costs a wake-up whatever it carries, so 10,000 connections at 1/s on a
    0.5 ms grid (5 messages an instant) cost ~3x tcpkali's CPU, on a 1.6 ms grid much less;
    the load stays smooth at any scale above 2 ms."""
    if n <= 0 or rate <= 0:
        return PHASE_GRID_NS
    grid = int(PER_INSTANT * SEC / (n * rate))
    return min(max(grid, PHASE_GRID_NS), PHASE_GRID_MAX_NS) // 1000 * 1000


def phases(n: int, rates: list[float], seed: int) -> np.ndarray:
    """Open loop: each connection's schedule is offset by a random phase, on a grid so that
    due messages share rounds (at most SEC / grid send instants a second; the grid for the
    busiest of the rates)."""
    live = [r for r in rates if r > 0]
    if not live:
        return np.zeros(n, np.int64)
    top = max(int(SEC / r) for r in live)
    grid = phase_grid(n, max(live))
    rng = np.random.default_rng(seed)
    return (rng.integers(0, top, n) // grid) * grid

