"""The pure-Python twins of harness._hot's per-message pacing and recording loops (the
socket loops' twins are in harness.wire.hot, which picks C or these): a small round's
credits, a plain closed loop's pick and commit, an open loop's pick and commit, and a small
round's latencies. tests/test_hot.py runs each against its C twin on random rounds."""

from __future__ import annotations

import numpy as np

from harness.wire import stamp


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


def py_ring_pop(ring: np.ndarray, head: np.ndarray, tail: np.ndarray, conns: list[int]
                ) -> tuple[list[int], list[int], list[int]] | None:
    """:meth:`harness.wire.protocol.InOrder.pop_few`: each reply of ``conns`` (its
    connection, one entry per reply, in read order) answers the oldest request its
    connection has waiting in ``ring`` ((n, cap) stamps; ``head``/``tail``: requests
    answered and sent): its seq, intended time (ns) and delay (µs). None, with nothing
    popped, when a connection got more replies than it has requests waiting."""
    need: dict[int, int] = {}
    for i in conns:
        need[i] = need.get(i, 0) + 1
    if any(tail[i] - head[i] < c for i, c in need.items()):
        return None
    cap = ring.shape[1]
    seqs: list[int] = []
    tints: list[int] = []
    delays: list[int] = []
    for i in conns:
        st = ring[i, head[i] % cap]
        head[i] += 1
        seqs.append(int(st["seq"]))
        tints.append(int(st["t"]))
        delays.append(int(st["delay"]))
    return seqs, tints, delays


def py_ring_push(ring: np.ndarray, head: np.ndarray, tail: np.ndarray, conns: list[int],
                 counts: list[int], times: list[int], gids: list[int], seq0: int,
                 worker: int, key: int) -> int:
    """InOrder._push of the closed loop's early sends: connection ``conns[k]`` sent
    ``counts[k]`` requests at ``times[k]`` (ns); each one's stamp (seq from ``seq0`` on,
    kind 0, no delay) queues at its tail (a connection listed twice: after the first). The
    number queued, or -1 with nothing queued when a queue would outgrow the ring."""
    if not len(conns) == len(counts) == len(times):
        raise ValueError("conns, counts and times differ in length")
    if min(counts, default=0) < 0:
        raise ValueError("a negative count")
    cap = ring.shape[1]
    more: dict[int, int] = {}
    for i, c in zip(conns, counts, strict=True):
        more[i] = more.get(i, 0) + c
    if any(tail[i] - head[i] + c > cap for i, c in more.items()):
        return -1
    total = sum(counts)
    idx = np.repeat(np.asarray(conns, dtype=np.int64), counts)
    st = stamp.make(np.asarray(gids, dtype=np.int64)[idx],
                    np.arange(seq0, seq0 + total, dtype=np.int64).astype(np.uint32), 0,
                    worker, 0, np.repeat(np.asarray(times, dtype=np.int64), counts), key)
    pos: list[int] = []
    for i, c in zip(conns, counts, strict=True):
        pos.extend(range(int(tail[i]), int(tail[i]) + c))
        tail[i] += c
    ring[idx, np.asarray(pos, dtype=np.int64) % cap] = st
    return total


def py_commit_closed(conns: list[int], counts: list[int], now: int, credits: np.ndarray,
                     outstanding: np.ndarray, progress: np.ndarray, early: np.ndarray,
                     measuring: bool) -> int:
    """The closed loop's commit of its early sends: ``conns[k]`` sent ``counts[k]`` (its
    credits) now; to outstanding (progress at ``now`` when it was idle), and outside the
    window to ``early``. The total."""
    if len(conns) != len(counts):
        raise ValueError("conns and counts differ in length")
    for i, c in zip(conns, counts, strict=True):
        credits[i] -= c
        if not outstanding[i]:
            progress[i] = now
        outstanding[i] += c
        if not measuring:
            early[i] += c
    return sum(counts)
