"""The two loops a :class:`~harness.worker.pacing.Pacer` runs: the closed loop (each sender
keeps ``inflight`` messages outstanding, a reply frees its slot after a think time) and the
open loop (each connection on a schedule fixed in advance, harness.worker.schedule). Each
is stateless beside the pacer's arrays: it picks the connections due and commits a send."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from harness.core.units import SEC
from harness.wire import hot

if TYPE_CHECKING:
    from harness.worker.pacing import Pacer

MAX_BURST = 4096  # open loop: most messages one connection catches up with in a round
# up to this many open-loop candidates, a pick one at a time costs less than numpy's
PICK_FEW = 256 if hot.native is not None else 12
NO_CONNS = np.zeros(0, dtype=np.int64)
Picked = tuple[np.ndarray, np.ndarray]  # (local connections, messages each), grouped


class ClosedLoop:
    """Send when a slot is free: ``credits`` per connection, refilled by replies."""

    period = 0  # ns between scheduled sends: none
    refills = True  # replies grant credits

    def pick(self, p: Pacer, now: int, alive: np.ndarray, blocked: np.ndarray,
             measuring: bool) -> Picked | None:
        """Connections with credits (only senders that are alive hold any; a sender that owes,
        Pacer._switch, holds fewer than none), and how many."""
        idx = np.flatnonzero(p.credits > 0)
        if not len(idx):
            return None
        if np.count_nonzero(blocked):  # cheaper than .any() (~0.2 against ~0.8 µs)
            idx = idx[~blocked[idx]]
        if p.stage:  # a stage may have retired senders: replies still grant them credits
            idx = idx[p.sends[idx]]
        if p.thinks:
            idx = idx[p.release_at[idx] <= now]
        counts = p.credits[idx]
        if measuring and p.budgeted:
            counts = np.minimum(counts, p.budget[idx])
            idx, counts = idx[counts > 0], counts[counts > 0]
        return (idx, counts) if len(idx) else None

    def commit(self, p: Pacer, idx: np.ndarray, counts: np.ndarray, now: int,
               measuring: bool) -> tuple[np.ndarray | int, np.ndarray | int, int]:
        """Sent now: intended time now (a reopened connection's first send: when it was
        due, :meth:`Pacer.resume`), no delay, none behind."""
        p.credits[idx] -= counts
        return (p.take_due(idx, counts, now) if p.resumed else now), 0, 0

    def next_send(self, p: Pacer, alive: np.ndarray, blocked: np.ndarray
                  ) -> tuple[int | None, int | None]:
        return None, None

    def rejoin(self, p: Pacer, i: int, now: int) -> None:
        if p.sends[i]:  # (more out than the window, an open stage's backlog: it owes them)
            p.credits[i] = p.inflight - int(p.outstanding[i])

    def due_at(self, p: Pacer, idx: np.ndarray) -> np.ndarray:
        """ns at which connections ``idx`` may send next: their slot freed (the last reply)
        and their think time over."""
        return np.maximum(p.release_at[idx], p.last_progress[idx])

    def resume(self, p: Pacer, i: int, now: int, due: int) -> None:
        self.rejoin(p, i, now)
        p.due_from[i] = due
        p.resumed += 1


class OpenLoop:
    """Send on a schedule: message k of connection i is due at
    ``base + phase[i] + k * period``, whatever the replies do."""

    refills = False

    def __init__(self, period: int) -> None:
        self.period = period  # ns between one connection's messages

    def pick(self, p: Pacer, now: int, alive: np.ndarray, blocked: np.ndarray,
             measuring: bool) -> Picked | None:
        """Connections whose schedule has messages due, and how many (at most MAX_BURST).
        Only the wheel's candidates are looked at: those with an instant since the last
        pick, and the laggards; the ones still owing after this round stay laggards."""
        got = self.pick_few(p, now, alive, blocked, measuring)
        if got is None:
            return None
        return np.asarray(got[0], dtype=np.int64), np.asarray(got[1], dtype=np.int64)

    def pick_few(self, p: Pacer, now: int, alive: np.ndarray, blocked: np.ndarray,
                 measuring: bool) -> Picked | tuple[list[int], list[int]] | None:
        """:meth:`pick`, with the answer for a few candidates (up to PICK_FEW) in plain
        lists, looked at one at a time (harness.wire.hot: in C when built)."""
        cand = p.wheel.candidates(now)
        if not len(cand):
            return None
        if len(cand) <= PICK_FEW:
            idx, want, lag = hot.open_pick(cand, now - p.sched_base, self.period, p.phase,
                                           p.sched, alive, p.sends, blocked,
                                           p.budget if measuring and p.budgeted else None,
                                           MAX_BURST)
            p.wheel.laggards = np.array(lag, dtype=np.int64) if lag else NO_CONNS
            return (idx, want) if idx else None
        due = (now - p.sched_base - p.phase[cand]) // self.period + 1 - p.sched[cand]
        if measuring and p.budgeted:
            due = np.minimum(due, p.budget[cand])
        can = alive[cand] & p.sends[cand]
        want = np.maximum(np.minimum(due, MAX_BURST), 0)  # (np.clip costs ~4x more)
        want[~can] = 0
        if np.count_nonzero(blocked):
            want[blocked[cand]] = 0
        over = due > want  # blocked or capped: next round again
        p.wheel.laggards = cand[over & can] if np.count_nonzero(over) else NO_CONNS
        sel = want > 0
        n = np.count_nonzero(sel)
        if n == len(sel):
            return cand, want
        return (cand[sel], want[sel]) if n else None

    def commit(self, p: Pacer, idx: np.ndarray, counts: np.ndarray, now: int,
               measuring: bool) -> tuple[np.ndarray | int, np.ndarray | int, int]:
        """Intended send times (ns), how late each is (µs), and how many of those the
        client's own slowness made late (counted inside the window only)."""
        tint = p.sched_base + p.phase[idx] + p.sched[idx] * self.period
        total = int(counts.sum())
        if total > len(idx):  # some send more than one: message k of each, k periods on
            k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            tint = np.repeat(tint, counts) + k * self.period
        p.sched[idx] += counts
        delay = np.maximum(now - tint, 0) // 1000
        return tint, delay, p.behind(idx, counts, delay, now) if measuring else 0

    def next_send(self, p: Pacer, alive: np.ndarray, blocked: np.ndarray
                  ) -> tuple[int | None, int | None]:
        """When the next message is due, and the next the client's own schedule owes (not a
        backlog a server built by keeping a socket full). A blocked connection waits for
        writability, not for a time."""
        if not alive.any():
            return None, None
        nxt = own = p.wheel.next_instant()
        lag = p.wheel.laggards
        if len(lag):
            lag = lag[alive[lag] & p.sends[lag] & ~blocked[lag]]
            due = p.sched_base + p.phase[lag] + p.sched[lag] * self.period
            if len(due):
                nxt = min(nxt, int(due.min()))
                mine = due[~p.backlog[lag]]
                if len(mine):
                    own = min(own, int(mine.min()))
        return nxt, own

    def rejoin(self, p: Pacer, i: int, now: int) -> None:
        """A connection joining mid-run owes nothing from before it joined: its next message
        is the first one due from now on."""
        behind = now - p.sched_base - int(p.phase[i])
        p.sched[i] = max(0, -(-behind // self.period))
        p.wheel.join(i)

    def due_at(self, p: Pacer, idx: np.ndarray) -> np.ndarray:
        """ns of connections ``idx``'s next scheduled messages."""
        return p.sched_base + p.phase[idx] + p.sched[idx] * self.period

    def resume(self, p: Pacer, i: int, now: int, due: int) -> None:
        """Its schedule goes on: what fell due while it reopened goes out now, late, its
        latency from the intended times."""
        p.wheel.join(i)


def loop_for(rate: float) -> ClosedLoop | OpenLoop:
    """The loop for a rate in msgs/s per connection (0: closed loop)."""
    return OpenLoop(int(SEC / rate)) if rate > 0 else ClosedLoop()

