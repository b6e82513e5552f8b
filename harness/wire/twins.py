"""The pure-Python twins of harness._hot's per-message pacing and recording loops (the
socket loops' twins are in harness.wire.hot, which picks C or these): a small round's
credits, a plain closed loop's pick and commit, an open loop's pick and commit, and a small
round's latencies. tests/test_hot.py runs each against its C twin on random rounds."""

from __future__ import annotations

import numpy as np


def py_credit_few(own: list[int], now: int, outstanding: np.ndarray, credits: np.ndarray,
                  progress: np.ndarray, refills: bool) -> None:
    """A reply on each connection of ``own`` (one entry per reply) frees an outstanding
    message (and, ``refills``, a credit), and marks progress at ``now``."""
    for i in own:
        if outstanding[i] > 0:
            outstanding[i] -= 1
            if refills:
                credits[i] += 1
        progress[i] = now


def py_closed_take(credits: np.ndarray, blocked: np.ndarray, outstanding: np.ndarray,
                   progress: np.ndarray, early: np.ndarray, now: int, measuring: bool
                   ) -> tuple[list[int], list[int], int] | None:
    """A plain closed loop's pick and commit: every connection with credits and not
    blocked sends them all now (to outstanding; progress at ``now`` if it was idle; to
    ``early`` outside the window). None when none sends."""
    idx = np.flatnonzero(credits > 0)
    if len(idx) and np.count_nonzero(blocked):  # (cheaper than masking every round)
        idx = idx[~blocked[idx]]
    if not len(idx):
        return None
    counts = credits[idx]
    credits[idx] = 0
    out = outstanding[idx]
    progress[idx[out == 0]] = now
    outstanding[idx] = out + counts
    if not measuring:
        early[idx] += counts
    cl = counts.tolist()
    return idx.tolist(), cl, sum(cl)


def py_open_commit(idx: list[int], counts: list[int], now: int, base: int, period: int,
                   phase: np.ndarray, sched: np.ndarray, outstanding: np.ndarray,
                   progress: np.ndarray, backlog: np.ndarray, clear_under: int
                   ) -> tuple[list[int], list[int], int]:
    """Connection ``idx[k]`` sends ``counts[k]`` messages now, the next ones of its
    schedule (``base + phase[i] + sched[i] * period``, then a period apart): each one's
    intended time (ns), its delay (µs, never negative), and the largest delay. The schedule
    moves on, outstanding grows, and an idle connection has progress at ``now``. When
    ``clear_under`` is not negative and no delay is over it, the connections are off
    backlog."""
    if len(counts) != len(idx):
        raise ValueError("idx and counts differ in length")
    tint: list[int] = []
    delay: list[int] = []
    for i, c in zip(idx, counts, strict=True):
        t = base + int(phase[i]) + int(sched[i]) * period
        for _ in range(c):
            tint.append(t)
            delay.append(max(now - t, 0) // 1000)
            t += period
        sched[i] += c
        if not outstanding[i]:
            progress[i] = now  # idle until now
        outstanding[i] += c
    worst = max(delay, default=0)
    if clear_under >= 0 and worst <= clear_under:
        for i in idx:
            backlog[i] = False
    return tint, delay, worst


def py_open_pick(cand: list[int] | np.ndarray, base: int, period: int, phase: np.ndarray,
                 sched: np.ndarray, alive: np.ndarray, sends: np.ndarray, blocked: np.ndarray,
                 budget: np.ndarray | None, burst: int
                 ) -> tuple[list[int], list[int], list[int]]:
    """An open-loop round's pick over its candidates: candidate i owes
    ``(base - phase[i]) // period + 1 - sched[i]`` messages (at most ``budget[i]`` when a
    budget is given). One that owes some, alive and a sender, sends min(owed, ``burst``),
    none when ``blocked``; one that still owes after that is a laggard. Returns the
    senders, their counts and the laggards, in candidate order."""
    if period <= 0:
        raise ValueError("the period must be positive")
    idx: list[int] = []
    want: list[int] = []
    lag: list[int] = []
    for i in (cand if isinstance(cand, list) else cand.tolist()):
        due = (base - int(phase[i])) // period + 1 - int(sched[i])
        if budget is not None:
            due = min(due, int(budget[i]))
        if due <= 0 or not (alive[i] and sends[i]):
            continue
        w = 0 if blocked[i] else min(due, burst)
        if w:
            idx.append(i)
            want.append(w)
        if due > w:
            lag.append(i)
    return idx, want, lag


def py_lat_few(t: list[int], tint: list[int], delay: list[int], open_loop: bool, begin: int
               ) -> tuple[list[int], int, int, list[int] | None, int, int] | None:
    """A small round's latencies: receive time less intended time (ns), and in a closed
    loop less the send's lag (``delay``, µs); an open loop's service times too (latency
    less the delay; a closed loop: None, 0, 0); each list with its least and greatest.
    None when a message was intended before ``begin``."""
    if not t or len(tint) != len(t) or len(delay) != len(t):
        raise ValueError("t, tint and delay: one non-empty length")
    if min(tint) < begin:
        return None
    if open_loop:
        lat = [a - b for a, b in zip(t, tint, strict=True)]
        svc = [x - d * 1000 for x, d in zip(lat, delay, strict=True)]
        return lat, min(lat), max(lat), svc, min(svc), max(svc)
    lat = [a - b - d * 1000 for a, b, d in zip(t, tint, delay, strict=True)]
    return lat, min(lat), max(lat), None, 0, 0


def wheel_candidates(order: np.ndarray, offs: np.ndarray, period: int, base: int, seen: int,
               now: int, lag: np.ndarray | list[int]) -> tuple[np.ndarray, int]:
    """:meth:`harness.worker.schedule.DueWheel.candidates` of a wheel's arrays
    (harness._hot has it in C too, for harness.wire.fused's open loop): the candidates,
    and ``seen`` after."""
    a, b = seen - base, now - base
    if b <= a:
        return np.unique(np.asarray(lag, dtype=np.int64)), seen
    if b - a >= period:
        return np.arange(len(order)), now
    pa, pb = a % period, b % period
    lo = int(offs.searchsorted(pa, side="right"))  # (the method: no wrappers)
    hi = int(offs.searchsorted(pb, side="right"))
    win = order[lo:hi] if pa < pb else np.concatenate((order[lo:], order[:hi]))
    if len(lag):
        return np.union1d(win, lag), now
    return np.sort(win), now


def wheel_next(offs: np.ndarray, period: int, base: int, seen: int) -> int:
    """:meth:`harness.worker.schedule.DueWheel.next_instant` of a wheel's arrays."""
    ps = (seen - base) % period
    j = int(offs.searchsorted(ps, side="right"))
    return seen + (int(offs[j]) - ps if j < len(offs) else period - ps + int(offs[0]))
