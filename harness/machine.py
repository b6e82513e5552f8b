"""The whole machine, sampled once per monitor tick: each core's busy time (user + nice +
system + irq + softirq, from ``psutil.cpu_times(percpu=True)``, in percent of that core)
and the part of it that *other* processes took: the core's busy % (interrupt time
included, as the kernel may charge a process's loopback traffic to it) less the CPU of the
processes harness knows. A known process pinned to one core counts on that core; an
unpinned one is subtracted from every core it may run on (so a stray server never passes
for "other" load).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import psutil

from harness.units import SEC


class CoreRow(NamedTuple):
    t_ns: int
    core: int
    busy_pct: float  # of that core: user + nice + system + irq + softirq
    others_pct: float  # busy_pct less the CPU of known processes on it (never below 0)


class CoreBusy:
    """Each core's busy % over the time since the previous reading."""

    def __init__(self) -> None:
        self._last: tuple[int, list[float]] | None = None

    def read(self, t_ns: int) -> list[float] | None:
        """Each core's busy % since the previous read (None on the first)."""
        try:
            now = [c.user + c.nice + c.system + getattr(c, "irq", 0.0) + getattr(c, "softirq", 0.0)
                   for c in psutil.cpu_times(percpu=True)]
        except (OSError, RuntimeError):
            return None
        last, self._last = self._last, (t_ns, now)
        if last is None or t_ns <= last[0] or len(last[1]) != len(now):
            return None
        wall = (t_ns - last[0]) / SEC
        return [max(b - a, 0.0) / wall * 100.0 for a, b in zip(last[1], now, strict=True)]


def others(t_ns: int, busy: list[float],
           known: Iterable[tuple[float, Sequence[int]]]) -> list[CoreRow]:
    """What processes harness does not know took of each core: ``known`` holds each known
    process's CPU % (of one core) and the cores it may run on (empty: any core)."""
    mine = [0.0] * len(busy)
    for cpu_pct, cores in known:
        for c in cores or range(len(busy)):
            if c < len(mine):
                mine[c] += cpu_pct
    return [CoreRow(t_ns, c, b, max(b - mine[c], 0.0)) for c, b in enumerate(busy)]


def core_means(rows: list[CoreRow]) -> dict[int, dict[str, float]]:
    """Per core: mean busy % and mean % other processes took, over ``rows``."""
    out: dict[int, dict[str, float]] = {}
    for c in sorted({r.core for r in rows}):
        mine = [r for r in rows if r.core == c]
        out[c] = {"busy_pct_mean": round(sum(r.busy_pct for r in mine) / len(mine), 1),
                  "others_pct_mean": round(sum(r.others_pct for r in mine) / len(mine), 1)}
    return out
