"""Resource monitoring with psutil: the client's workers and, when visible, the target server.

A :class:`Monitor` samples a fixed set of processes (role -> pid) from a background
*thread* of the coordinator, once per ``interval`` seconds, until :meth:`Monitor.stop`.

Units and meanings of one sample row (one per process per sample):

* ``t_ns``: ``time.monotonic_ns()`` of the sample tick (shared by every row of a tick);
* ``second``: float seconds from ``since_ns`` (or from the monitor's start) to ``t_ns``;
* ``cpu_pct``: CPU of that process over the interval ending at this row, in percent of
  one core: (user + system) CPU seconds delta / wall seconds delta * 100 (so 250 means
  2.5 cores). Measured from ``cpu_times()`` deltas; ``None`` on a process's first row;
* ``rss_bytes``: resident set size in bytes; ``threads``: thread count; ``fds``: open
  file descriptors (``None`` when not readable, e.g. another user's process);
* ``net_bytes``: *system-wide* bytes sent + received on all interfaces (loopback
  included) since the previous tick, from ``psutil.net_io_counters()``. It is measured
  once per tick and repeated on every row of that tick: never sum it across roles.
  ``None`` on the first tick.

The whole machine is sampled too, once per tick (see :mod:`harness.run.machine`): each core's
busy % and the part of it that *other* processes took, less the CPU of the processes
harness knows (the watched ones, this process, and any ``known`` pids such as a local
target server). Per role, ``summary()`` gives ``core`` (the one core a pinned process may
use, else None) and ``others_on_core_pct`` (mean over the window of what other processes
took of that core). While other load takes ``SCAN_AT_PCT`` of a watched core, each tick also
reads every process's CPU from /proc, and ``other_procs()`` names the busiest of them.

A pid that does not exist at construction is not monitored and leaves a line in
``warnings``. A process that exits or dies while monitored (gone, zombie, or its pid
reused) is recorded in ``died`` (role -> monotonic ns when a tick first saw it dead)
and no longer sampled; the others carry on. Call :meth:`Monitor.stop` *before* ending the
watched processes, or a normal exit at the end of a run is recorded as a death.

Reading one process (a row, its CPU delta, a denied figure) is :mod:`harness.run.procread`'s.
Nothing here prints; the caller prints ``warnings``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

import psutil

from harness.core.units import SEC
from harness.run import machine
from harness.run.procread import (
    Gone,
    Proc,
    Row,
    known_cpu,
    open_proc,
    open_quietly,
    read_row,
    summarize,
)

MIN_INTERVAL_S = 0.01  # below this the "cheap" promise no longer holds
SCAN_AT_PCT = 10.0  # other load on a watched core from which the other processes are named
JOIN_TIMEOUT_S = 1.0  # stop() waits at most this long for the sampling thread

FIELDS = ("cpu_pct", "rss_bytes", "threads", "fds", "net_bytes")

class Monitor:
    """Samples CPU %, RSS, threads and fds of ``procs`` (role -> pid) every ``interval`` s.

    Use: ``m = Monitor({"worker0": pid0, "server": spid}); m.start(); ... m.mark("step1");
    ... m.stop(); m.summary(since_ns=m.marks["step1"])``. ``samples()``, ``summary()`` and
    ``series()`` may be called while running (they copy under a lock).
    """

    def __init__(self, procs: dict[str, int], interval: float = 1.0,
                 known: set[int] | None = None) -> None:
        if not math.isfinite(interval) or interval < MIN_INTERVAL_S:
            raise ValueError(f"interval must be >= {MIN_INTERVAL_S} s, got {interval!r}")
        self.interval = float(interval)
        self.warnings: list[str] = []
        self.died: dict[str, int] = {}
        self.marks: dict[str, int] = {}
        self.start_ns: int | None = None
        self._watched: list[Proc] = []
        for role, pid in procs.items():
            watched = open_proc(role, pid, self.warnings)
            if watched is not None:
                self._watched.append(watched)
        seen = {w.pid for w in self._watched}
        self._known = [k for k in (open_quietly(pid) for pid in
                                   sorted(({os.getpid()} | set(known or ())) - seen))
                       if k is not None]
        self._rows: list[Row] = []
        self._core_rows: list[machine.CoreRow] = []
        self._core_busy = machine.CoreBusy()
        self._procs = machine.OtherProcs()
        self._proc_rows: list[machine.ProcRow] = []
        self._scans: list[int] = []  # ticks whose scan named the other processes
        self._net_last: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def roles(self) -> list[str]:
        """Roles actually monitored (those whose pid existed at construction)."""
        return [w.role for w in self._watched]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Take the first sample now (RSS baseline, CPU baseline), then sample in a thread."""
        if self._thread is not None:
            raise RuntimeError("Monitor.start() called twice")
        self.start_ns = time.monotonic_ns()
        self._tick(self.start_ns)
        self._thread = threading.Thread(target=self._run, name="harness-monitor", daemon=True)
        self._thread.start()

    def mark(self, label: str) -> None:
        """Remember ``time.monotonic_ns()`` under ``label`` in ``marks`` (last one wins)."""
        self.marks[label] = time.monotonic_ns()

    def stop(self) -> None:
        """Stop sampling; returns within about ``JOIN_TIMEOUT_S``. Safe to call twice."""
        self._stop.set()
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():  # stuck in a /proc read: a daemon thread, abandoned
            self.warnings.append(f"monitor thread did not stop within {JOIN_TIMEOUT_S} s")

    # -- results -----------------------------------------------------------------------

    def samples(self, since_ns: int | None = None, until_ns: int | None = None) -> list[dict]:
        """Rows with ``since_ns <= t_ns < until_ns`` (either bound optional), in time order."""
        base = self._base(since_ns)
        return [
            {
                "t_ns": r.t_ns,
                "second": (r.t_ns - base) / SEC,
                "role": r.role,
                "pid": r.pid,
                "cpu_pct": r.cpu_pct,
                "rss_bytes": r.rss_bytes,
                "threads": r.threads,
                "fds": r.fds,
                "net_bytes": r.net_bytes,
            }
            for r in self._window(since_ns, until_ns)
        ]

    def series(
        self, role: str, name: str, since_ns: int | None = None, until_ns: int | None = None
    ) -> tuple[list[float], list[Any]]:
        """One figure of one role as (seconds, values), e.g. to feed :func:`trend`."""
        if name not in FIELDS:
            raise ValueError(f"unknown figure {name!r}; one of {', '.join(FIELDS)}")
        base = self._base(since_ns)
        rows = [r for r in self._window(since_ns, until_ns) if r.role == role]
        return [(r.t_ns - base) / SEC for r in rows], [getattr(r, name) for r in rows]

    def summary(self, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, dict]:
        """Per monitored role: CPU % mean/max, RSS max/start/end (bytes), threads/fds max,
        and ``died_at_s`` (seconds from monitor start; None unless it died before
        ``until_ns``). Figures are None when the role has no row in the window."""
        by_role: dict[str, list[Row]] = {w.role: [] for w in self._watched}
        for r in self._window(since_ns, until_ns):
            by_role[r.role].append(r)
        out = {role: self._summarize(role, rows, until_ns) for role, rows in by_role.items()}
        cores = self.cores(since_ns, until_ns)
        for w in self._watched:
            one = w.cores[0] if len(w.cores) == 1 else None
            out[w.role]["core"] = one
            out[w.role]["others_on_core_pct"] = (cores[one]["others_pct_mean"]
                                                 if one in cores else None)
        return out

    def cores(self, since_ns: int | None = None, until_ns: int | None = None
              ) -> dict[int, dict[str, float]]:
        """Per core: mean busy % and mean % other processes took, over the window's ticks."""
        with self._lock:
            rows = [r for r in self._core_rows if (since_ns is None or r.t_ns >= since_ns)
                    and (until_ns is None or r.t_ns < until_ns)]
        return machine.core_means(rows)

    def other_procs(self, since_ns: int | None = None, until_ns: int | None = None,
                    core: int | None = None) -> list[dict]:
        """The processes harness does not know that took the most CPU (on ``core``, when
        given) while a watched core was busy with other load: [{"pid", "name", "cpu_pct"}]
        (mean % of one core over the window's scans), most first; [] when no core was that
        busy."""
        def inside(t: int) -> bool:
            return (since_ns is None or t >= since_ns) and (until_ns is None or t < until_ns)
        with self._lock:
            rows = [r for r in self._proc_rows if inside(r.t_ns)]
            scans = sum(1 for t in self._scans if inside(t))
        return machine.top_others(rows, scans, core)

    # -- internals ---------------------------------------------------------------------

    def _run(self) -> None:
        """Sampling loop: ticks on a fixed schedule from start_ns, skips ticks it missed."""
        assert self.start_ns is not None
        step = round(self.interval * SEC)
        due = self.start_ns + step
        try:
            while not self._stop.wait(max(due - time.monotonic_ns(), 0) / SEC):
                now = time.monotonic_ns()
                self._tick(now)
                due += step * max(1, (now - due) // step + 1)
        except Exception as exc:  # a background thread must not die silently
            self.warnings.append(f"monitor stopped sampling: {type(exc).__name__}: {exc}")

    def _tick(self, t_ns: int) -> None:
        net = self._net_delta()
        busy = self._core_busy.read(t_ns)
        rows = []
        for w in self._watched:
            if w.role in self.died:
                continue
            try:
                rows.append(read_row(w, t_ns, net, self.warnings))
            except (Gone, psutil.NoSuchProcess):  # ZombieProcess included
                self._record_death(w, time.monotonic_ns())  # when seen, not the tick
        for k in self._known:
            known_cpu(k)
        core_rows = self._others(t_ns, busy) if busy is not None else []
        procs = self._scan(t_ns, core_rows)
        with self._lock:
            self._rows.extend(rows)
            self._core_rows.extend(core_rows)
            if procs is not None:
                self._proc_rows.extend(procs)
                self._scans.append(t_ns)

    def _scan(self, t_ns: int, core_rows: list[machine.CoreRow]
              ) -> list[machine.ProcRow] | None:
        """Who the other processes are, while they take SCAN_AT_PCT of a watched core (and
        every few ticks otherwise, so the first busy tick has a recent reading to compare)."""
        mine = {w.cores[0] for w in self._watched if len(w.cores) == 1}
        busy = any(r.core in mine and r.others_pct >= SCAN_AT_PCT for r in core_rows)
        max_age = round(3 * self.interval * SEC)
        if not mine or not (busy or self._procs.stale(t_ns, max_age)):
            return None
        known = {w.pid for w in [*self._watched, *self._known]}
        rows = self._procs.read(t_ns, known, max_age)
        return rows if busy else None

    def _others(self, t_ns: int, busy: list[float]) -> list[machine.CoreRow]:
        """What processes harness does not know took of each core over the last tick."""
        known = [(w.cpu_pct, w.cores) for w in [*self._watched, *self._known]
                 if w.cpu_pct is not None and w.role not in self.died]
        return machine.others(t_ns, busy, known)

    def _net_delta(self) -> int | None:
        try:
            counters = psutil.net_io_counters()
        except (OSError, RuntimeError):
            counters = None
        if counters is None:
            return None
        total = counters.bytes_sent + counters.bytes_recv
        last, self._net_last = self._net_last, total
        if last is None or total < last:
            return None
        return total - last

    def _record_death(self, w: Proc, t_ns: int) -> None:
        self.died[w.role] = t_ns
        after = (t_ns - (self.start_ns or t_ns)) / SEC
        self.warnings.append(
            f"{w.role} pid {w.pid} exited or died (seen at {after:.1f} s): no longer monitored"
        )

    def _base(self, since_ns: int | None) -> int:
        if since_ns is not None:
            return since_ns
        return self.start_ns if self.start_ns is not None else 0

    def _window(self, since_ns: int | None, until_ns: int | None) -> list[Row]:
        with self._lock:
            rows = list(self._rows)
        return [
            r
            for r in rows
            if (since_ns is None or r.t_ns >= since_ns) and (until_ns is None or r.t_ns < until_ns)
        ]

    def _summarize(self, role: str, rows: list[Row], until_ns: int | None) -> dict[str, Any]:
        died_ns = self.died.get(role)
        died_at_s = None
        if died_ns is not None and (until_ns is None or died_ns < until_ns):
            died_at_s = (died_ns - self._base(None)) / SEC
        return summarize(rows, died_at_s)


def listener_pids(ports: set[int]) -> set[int]:
    """Local processes listening on any of ``ports`` (TCP): a target on this machine, so
    its CPU is not taken for "other" load. Empty when the table cannot be read."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return set()
    return {c.pid for c in conns if c.pid and c.status == psutil.CONN_LISTEN and c.laddr
            and c.laddr.port in ports}
