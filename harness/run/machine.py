"""The whole machine, sampled once per monitor tick: each core's busy time (user + nice +
system + irq + softirq, from ``psutil.cpu_times(percpu=True)``, in percent of that core)
and the part of it that *other* processes took: the core's busy % (interrupt time
included, as the kernel may charge a process's loopback traffic to it) less the CPU of the
processes harness knows. A known process pinned to one core counts on that core; an
unpinned one is subtracted from every core it may run on (so a stray server never passes
for "other" load).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import psutil

from harness.core.units import SEC


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


OTHERS_TOP = 3  # processes named as the other load on a busy machine
OTHERS_MIN_PCT = 1.0  # a process below this (% of one core) is not recorded


class ProcRow(NamedTuple):
    t_ns: int
    pid: int
    name: str
    cpu_pct: float  # of one core, over the time since the previous scan
    core: int  # the core it last ran on (a sample: over many scans, where it ran)


class OtherProcs:
    """The CPU % of every process harness does not know, over the time since the previous
    scan, from /proc/<pid>/stat (utime + stime, all threads): who the "other processes"
    taking a core are. A scan reads one small file per process (a few ms for a few hundred
    processes), so the monitor scans only while some core is busy with other load."""

    def __init__(self) -> None:
        self._last: tuple[int, dict[int, float]] | None = None
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def stale(self, t_ns: int, max_age_ns: int) -> bool:
        """No reading yet, or the last one is older than ``max_age_ns``."""
        return self._last is None or t_ns - self._last[0] > max_age_ns

    def read(self, t_ns: int, known: set[int], max_age_ns: int) -> list[ProcRow] | None:
        """Processes (not in ``known``) that took at least OTHERS_MIN_PCT since the last
        read; None on the first read, or when the last one is older than ``max_age_ns`` (a
        mean over a long quiet time would hide who is busy now: this read is the new base)."""
        now: dict[int, float] = {}
        names: dict[int, tuple[str, int]] = {}
        try:
            entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
        except OSError:
            return None
        for entry in entries:
            pid = int(entry)
            if pid in known:
                continue
            got = _proc_cpu(pid, self._tick)
            if got is not None:
                names[pid], now[pid] = got
        last, self._last = self._last, (t_ns, now)
        if last is None or t_ns <= last[0] or t_ns - last[0] > max_age_ns:
            return None
        wall = (t_ns - last[0]) / SEC
        rows = [ProcRow(t_ns, pid, *names[pid][:1], (cpu - last[1][pid]) / wall * 100.0,
                        names[pid][1]) for pid, cpu in now.items() if pid in last[1]]
        return [r for r in rows if r.cpu_pct >= OTHERS_MIN_PCT]


def _proc_cpu(pid: int, tick: int) -> tuple[tuple[str, int], float] | None:
    """((command name, core it last ran on), user + system CPU s) of a process, or None
    when it is gone. /proc/<pid>/stat after the ")": utime, stime and processor are the
    12th, 13th and 37th fields."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        close = data.rindex(b")")
        name = data[data.index(b"(") + 1:close].decode("utf-8", "replace")
        fields = data[close + 2:].split()
        return (name, int(fields[36])), (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError, IndexError):
        return None


def top_others(rows: list[ProcRow], scans: int, core: int | None = None) -> list[dict]:
    """The processes that took the most CPU over ``scans`` scans (mean % of one core over
    them, a process absent from a scan counting 0 there), on ``core`` when given (a scan
    counts where the process last ran): [{"pid", "name", "cpu_pct"}], most first."""
    if scans <= 0:
        return []
    total: dict[tuple[int, str], float] = {}
    for r in (r for r in rows if core is None or r.core == core):
        total[(r.pid, r.name)] = total.get((r.pid, r.name), 0.0) + r.cpu_pct
    ranked = sorted(total.items(), key=lambda kv: -kv[1])[:OTHERS_TOP]
    return [{"pid": pid, "name": name, "cpu_pct": round(cpu / scans, 1)}
            for (pid, name), cpu in ranked if cpu / scans >= OTHERS_MIN_PCT]
