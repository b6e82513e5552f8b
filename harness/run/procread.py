"""One watched process, read with psutil: open it by pid, read one sample row (CPU % of
one core since its previous reading, RSS bytes, threads, open fds), and summarize a
window of rows. The row's fields and units are harness.run.monitor's; a figure that
access is denied to is None, with one warning per process and figure. Nothing here
prints: warnings go to the list the caller passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import psutil

from harness.core.units import SEC

T = TypeVar("T")


class Row(NamedTuple):
    t_ns: int
    role: str
    pid: int
    cpu_pct: float | None
    rss_bytes: int | None
    threads: int | None
    fds: int | None
    net_bytes: int | None


@dataclass(slots=True)
class Proc:
    """One monitored process and what the next CPU delta needs."""

    role: str
    pid: int
    proc: psutil.Process
    last_cpu_s: float | None = None  # user + system CPU seconds at last_ns
    last_ns: int = 0
    denied: set[str] = field(default_factory=set)  # figures already warned about
    cores: tuple[int, ...] = ()  # the cores it may run on (its affinity), () if unknown
    cpu_pct: float | None = None  # at the last tick


class Gone(Exception):
    """The watched process is dead (exited, zombie, or pid reused)."""


def open_proc(role: str, pid: int, warnings: list[str]) -> Proc | None:
    """The process ``pid`` to watch as ``role``; None (and a warning) when it does not
    exist, is a zombie or is not accessible. TypeError for a pid that is not an int."""
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid of {role!r} must be an int, got {pid!r}")
    if pid <= 0:
        warnings.append(f"{role} pid {pid} is not a valid pid: not monitored")
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.ZombieProcess(pid)
    except psutil.NoSuchProcess:  # ZombieProcess included
        warnings.append(f"{role} pid {pid} does not exist: not monitored")
        return None
    except psutil.AccessDenied:
        warnings.append(f"{role} pid {pid} is not accessible: not monitored")
        return None
    return Proc(role, pid, proc, cores=affinity(proc))


def open_quietly(pid: int) -> Proc | None:
    """A known process (read for its CPU only), or None without a word."""
    try:
        proc = psutil.Process(pid)
        return Proc(f"known{pid}", pid, proc, cores=affinity(proc))
    except psutil.Error:
        return None


def affinity(proc: psutil.Process) -> tuple[int, ...]:
    try:
        return tuple(sorted(proc.cpu_affinity() or ()))
    except (psutil.Error, AttributeError, OSError):
        return ()


def read_row(w: Proc, t_ns: int, net: int | None, warnings: list[str]) -> Row:
    """One sample of ``w`` at tick ``t_ns``; raises Gone when it is dead."""
    proc = w.proc
    if not proc.is_running():  # also False when the pid was reused
        raise Gone
    with proc.oneshot():
        if try_read(w, "status", proc.status, warnings) == psutil.STATUS_ZOMBIE:
            raise Gone
        times = try_read(w, "cpu times", proc.cpu_times, warnings)
        read_ns = time.monotonic_ns()
        mem = try_read(w, "memory", proc.memory_info, warnings)
        threads = try_read(w, "threads", proc.num_threads, warnings)
        fds = (try_read(w, "open fds", proc.num_fds, warnings) if hasattr(proc, "num_fds")
               else None)
    w.cpu_pct = cpu_pct(w, times, read_ns)
    return Row(t_ns=t_ns, role=w.role, pid=w.pid, cpu_pct=w.cpu_pct,
               rss_bytes=None if mem is None else mem.rss, threads=threads, fds=fds,
               net_bytes=net)


def known_cpu(w: Proc) -> None:
    """Update the CPU % of a known process (None when it cannot be read)."""
    try:
        times = w.proc.cpu_times()
    except psutil.Error:
        w.cpu_pct = None
        return
    w.cpu_pct = cpu_pct(w, times, time.monotonic_ns())


def cpu_pct(w: Proc, times: Any, read_ns: int) -> float | None:
    """Percent of one core since this process's previous reading; None on the first."""
    if times is None:
        w.last_cpu_s = None
        return None
    cpu_s = times.user + times.system
    pct = None
    if w.last_cpu_s is not None and read_ns > w.last_ns:
        pct = max(cpu_s - w.last_cpu_s, 0.0) / ((read_ns - w.last_ns) / SEC) * 100.0
    w.last_cpu_s, w.last_ns = cpu_s, read_ns
    return pct


def try_read(w: Proc, what: str, read: Callable[[], T], warnings: list[str]) -> T | None:
    """One figure; None (and one warning per role and figure) if access is denied."""
    try:
        return read()
    except psutil.ZombieProcess as exc:
        raise Gone from exc
    except psutil.AccessDenied:
        if what not in w.denied:
            w.denied.add(what)
            warnings.append(f"{w.role} pid {w.pid}: {what} not readable (access denied)")
        return None


def summarize(rows: list[Row], died_at_s: float | None) -> dict[str, Any]:
    """One role's window: CPU % mean/max, RSS max/start/end (bytes), threads/fds max
    (None when no row has the figure), and ``died_at_s`` as given."""
    cpu = [r.cpu_pct for r in rows if r.cpu_pct is not None]
    rss = [r.rss_bytes for r in rows if r.rss_bytes is not None]
    return {
        "samples": len(rows),
        "cpu_pct_mean": sum(cpu) / len(cpu) if cpu else None,
        "cpu_pct_max": max(cpu) if cpu else None,
        "rss_max_bytes": max(rss) if rss else None,
        "rss_start_bytes": rss[0] if rss else None,
        "rss_end_bytes": rss[-1] if rss else None,
        "threads_max": _max_known(r.threads for r in rows),
        "fds_max": _max_known(r.fds for r in rows),
        "died_at_s": died_at_s,
    }


def _max_known(values: Any) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
