"""Pacing: which connections send how many messages, and when. Closed loop, open loop and
stages behind one interface (:class:`Pacer`), pure numpy over per-connection arrays, no
sockets and no clock of its own: every call takes ``now`` (ns of ``time.monotonic_ns()``),
so it runs on synthetic clocks in tests.

* Closed loop: each sender keeps ``inflight`` messages outstanding; a reply frees its slot
  after a think time: constant, or uniform in [low, high] per connection (its user class's,
  or the run's), drawn from a pool of seeded uniforms refilled in batches (no random call
  per reply).
* Open loop: each connection sends on a schedule fixed in advance, ``period`` ns apart, from
  a random phase on a grid (harness.worker.schedule.phase_grid: 0.5 to 2 ms, coarser when a worker's
  connections are many and quiet, so that a send instant carries ~16 messages rather
  than 2); latency is taken from the intended time, which is on that grid.
* Stages: at each stage start the active connection count and the rate change; the pacer
  says which connections to open, and retires the rest once their replies are in.
"""

from __future__ import annotations

import numpy as np

from harness.core.plan import Pacing
from harness.core.result import Share
from harness.core.units import SEC
from harness.wire import hot
from harness.worker.loops import ClosedLoop, OpenLoop, Picked, loop_for
from harness.worker.schedule import DueWheel, phase_grid, phases

BEHIND_US = 5000  # open loop: a send this late (µs) counts as behind schedule (a saturated
# client slips further and further; a scheduling hiccup on a busy machine rarely lasts 5 ms)
THINK_DRAWS = 4096  # uniforms drawn at once for think times
SMALL = 64  # up to this many entries, a Python set beats np.unique (~1 against ~15 µs)
BIG = np.iinfo(np.int64).max // 4  # the budget of a connection without one



class Pacer:
    """One step's pacing state, one entry per local connection."""

    def __init__(self, share: Share, pacing: Pacing, seed: int, users: tuple = ()) -> None:
        n = len(share.node)
        self.n = n
        self.inflight = pacing.inflight
        self.think_lo, self.think_span = _thinks(share, pacing, users)
        self.thinks = bool(self.think_lo.any() or self.think_span.any())
        self.varied = bool(self.think_span.any())
        self.think_rng = np.random.default_rng([seed, 17])
        self.draws = np.zeros(0)
        self.drawn = 0  # draws used
        self.base_sends = share.sends.astype(bool)
        self.sends = self.base_sends.copy()  # retired connections stop sending
        self.credits = np.zeros(n, dtype=np.int64)
        self.outstanding = np.zeros(n, dtype=np.int64)
        # of those, sent before the measure window (warm-up): their timeouts are not the
        # window's; ``early_left`` is their sum (0: nothing to look at)
        self.early = np.zeros(n, dtype=np.int64)
        self.early_left = 0
        self.release_at = np.zeros(n, dtype=np.int64)  # think time: no send before this
        self.last_progress = np.zeros(n, dtype=np.int64)  # a reply or a send from idle
        self.backlog = np.zeros(n, dtype=bool)  # a server kept it blocked: off schedule
        self.budgeted = share.budget is not None
        self.budget = (share.budget.astype(np.int64) if share.budget is not None
                       else np.full(n, BIG, dtype=np.int64))
        self.stages = share.stages
        self.stage = 0
        self.retiring = np.zeros(n, dtype=bool)  # a stage dropped it: drain, then close
        self.retire_at = np.zeros(n, dtype=np.int64)
        rate = share.stages[0][2] if share.stages else share.rate
        self.loop: ClosedLoop | OpenLoop = loop_for(rate)
        self.period = self.loop.period  # ns between scheduled sends; 0: closed loop
        self.sched = np.zeros(n, dtype=np.int64)  # open loop: messages scheduled so far
        self.sched_base = 0
        rates = [rate] + [r for _, _, r in share.stages]
        self.phase = phases(n, rates, seed)
        # open loop: ns between send instants (the phases' grid), else 0
        self.grid = phase_grid(n, max(rates)) if max(rates) > 0 else 0
        self.wake_at: int | None = None  # ns the loop meant to wake for its own schedule
        self.wheel = DueWheel(self.phase, self.period or 1, 0)  # open loop: who may be due
        self.due_from = np.zeros(n, dtype=np.int64)  # closed loop: a reopened connection's
        self.resumed = 0  # ... next send was due from this ns (0: none); how many wait

    def start(self, begin: int, alive: np.ndarray) -> None:
        """Sending starts at ``begin``: every live sender may fill its window."""
        self.credits[:] = np.where(self.sends & alive, self.inflight, 0)
        self.release_at[:] = begin
        self.last_progress[:] = begin
        self.sched_base = begin
        self.wheel = DueWheel(self.phase, self.period or 1, begin)

    # ------------------------------------------------------------------ sends

    def pick(self, now: int, alive: np.ndarray, blocked: np.ndarray,
             measuring: bool) -> Picked | None:
        return self.loop.pick(self, now, alive, blocked, measuring)

    def pick_few(self, now: int, alive: np.ndarray, blocked: np.ndarray, measuring: bool
                 ) -> Picked | tuple[list[int], list[int]] | None:
        """Open loop: :meth:`pick`, a few candidates' answer in plain lists
        (OpenLoop.pick_few)."""
        assert isinstance(self.loop, OpenLoop)
        return self.loop.pick_few(self, now, alive, blocked, measuring)

    def commit(self, idx: np.ndarray, counts: np.ndarray, now: int,
               measuring: bool) -> tuple[np.ndarray | int, np.ndarray | int, int]:
        """The picked messages are sent now: intended times (ns), delays (µs), and how
        many are behind schedule by the client's fault (:meth:`behind`)."""
        tint, delay, behind = self.loop.commit(self, idx, counts, now, measuring)
        self.last_progress[idx[self.outstanding[idx] == 0]] = now  # idle until now
        self.outstanding[idx] += counts
        if measuring and self.budgeted:
            self.budget[idx] -= counts
        if not measuring:
            self.early[idx] += counts
            self.early_left += int(counts.sum())
        return tint, delay, behind

    def commit_early(self, conns: list[int], counts: list[int], now: int,
                     measuring: bool) -> int:
        """:meth:`commit` of a closed loop's early sends (harness.wire.rounds.Early: no
        budget; no reopened connection here), in lists (harness.wire.hot: in C when built):
        ``conns[k]`` sent ``counts[k]`` now. Returns the total."""
        total: int = hot.commit_closed(conns, counts, now, self.credits, self.outstanding,
                                       self.last_progress, self.early, measuring)
        if not measuring:
            self.early_left += total
        return total

    def plain_closed(self, measuring: bool) -> bool:
        """A closed loop in which only credits decide who sends: no stage past the first,
        think time, budget or reopened connection (:meth:`take_closed` serves it)."""
        return not (self.period or self.stage or self.thinks or self.resumed or
                    (measuring and self.budgeted))

    def take_closed(self, now: int, blocked: np.ndarray, measuring: bool
                    ) -> tuple[list[int], list[int], int] | None:
        """:meth:`pick` and :meth:`commit` at once for a :meth:`plain_closed` loop (in C
        when built): every connection with credits and not blocked sends them all now.
        Returns the connections, their counts and the total; None when none sends."""
        got = hot.closed_take(self.credits, blocked, self.outstanding, self.last_progress,
                              self.early, now, measuring)
        if got is not None and not measuring:
            self.early_left += got[2]
        return got

    def commit_few(self, idx: list[int], counts: list[int], now: int, measuring: bool
                   ) -> tuple[list[int], list[int], int]:
        """:meth:`commit` for a small open-loop round, without arrays (harness.wire.hot: in C
        when built): each message's intended time (ns) and delay (µs), and how many are
        behind by the client's fault."""
        tint, delay, worst = hot.open_commit(idx, counts, now, self.sched_base, self.period,
                                             self.phase, self.sched, self.outstanding,
                                             self.last_progress, self.backlog,
                                             BEHIND_US if measuring else -1)
        if measuring and self.budgeted:
            for i, c in zip(idx, counts, strict=True):
                self.budget[i] -= c
        if not measuring:
            self.early[idx] += counts
            self.early_left += sum(counts)
            return tint, delay, 0
        if worst > BEHIND_US:  # (rare) the array path
            return tint, delay, self.behind(np.asarray(idx, dtype=np.int64),
                                            np.asarray(counts, dtype=np.int64),
                                            np.asarray(delay, dtype=np.int64), now)
        return tint, delay, 0

    def behind(self, idx: np.ndarray, counts: np.ndarray, delay: np.ndarray,
               now: int) -> int:
        """Sends over BEHIND_US behind schedule because the client was slow: the loop woke
        that late for its own schedule. A backlog the server built by keeping a socket full
        is late too, but that lateness is the server's."""
        late = delay > BEHIND_US
        if not late.any():
            self.backlog[idx] = False
            return 0
        n = 0
        if self.wake_at is not None and now - self.wake_at > BEHIND_US * 1000:
            held = np.repeat(self.backlog[idx], counts)
            n = int((late & ~held).sum())
        last = np.cumsum(counts) - 1
        self.backlog[idx[~late[last]]] = False  # caught up with the schedule
        return n

    def next_send(self, alive: np.ndarray, blocked: np.ndarray | None = None) -> int | None:
        """Open loop: ns of the next scheduled send among the live senders that are not
        ``blocked``; None in closed loop."""
        if blocked is None:
            blocked = np.zeros(len(alive), dtype=bool)
        nxt, self.wake_at = self.loop.next_send(self, alive, blocked)
        return nxt

    def budget_left(self, alive: np.ndarray) -> bool:
        return bool((alive & self.sends & (self.budget > 0)).any())

    # ------------------------------------------------------------------ replies, timeouts

    def credit(self, own: np.ndarray, now: int) -> None:
        """Replies on connections ``own`` (one entry per reply) free their slots."""
        if not len(own):
            return
        conns: np.ndarray | slice
        got: np.ndarray | int
        if len(own) <= SMALL and len(set(own.tolist())) == len(own):
            conns, got = own, 1  # a few replies, one per connection (low concurrency)
        elif len(own) * 8 < self.n:  # a few replies among many connections: only theirs
            conns, got = np.unique(own, return_counts=True)
        else:
            conns, got = slice(None), np.bincount(own, minlength=self.n)
        grant = np.minimum(got, self.outstanding[conns])
        self.outstanding[conns] -= grant
        if self.loop.refills:  # the open loop sends on its schedule, not on replies
            self.credits[conns] += grant
        self.last_progress[own] = now  # repeats in own set the same value
        if self.thinks:
            self.release_at[own] = now + self.think_for(own)

    def think_for(self, own: np.ndarray) -> np.ndarray:
        """ns each of connections ``own`` thinks before its next send: its low bound plus a
        uniform share of its span, from the pre-drawn pool."""
        if not self.varied:
            return self.think_lo[own]
        k = len(own)
        if self.drawn + k > len(self.draws):
            self.draws = self.think_rng.random(max(THINK_DRAWS, k))
            self.drawn = 0
        u = self.draws[self.drawn:self.drawn + k]
        self.drawn += k
        return self.think_lo[own] + (u * self.think_span[own]).astype(np.int64)

    def next_release(self, now: int, alive: np.ndarray) -> int | None:
        """Closed loop with think times: ns of the next send a think time holds back (a
        live sender with credits), or None when none waits on one."""
        held = alive & self.sends & (self.credits > 0) & (self.release_at > now)
        return int(self.release_at[held].min()) if held.any() else None

    def credit_few(self, own: list[int], now: int) -> None:
        """As :meth:`credit`, for a short list (a small round), without arrays
        (harness.wire.hot: in C when built)."""
        hot.credit_few(own, now, self.outstanding, self.credits, self.last_progress,
                       self.loop.refills)
        if self.thinks:
            idx = np.asarray(own, dtype=np.int64)
            self.release_at[idx] = now + self.think_for(idx)

    def answered_early(self, conns: list[int] | np.ndarray) -> None:
        """Replies (one entry each, on connections ``conns``) to messages sent before the
        window: fewer of the outstanding messages are the warm-up's."""
        early = self.early
        if len(conns) > SMALL:
            take = np.minimum(np.bincount(np.asarray(conns, dtype=np.int64),
                                          minlength=self.n), early)
            early -= take
            self.early_left -= int(take.sum())
            return
        for c in conns:
            if early[c]:
                early[c] -= 1
                self.early_left -= 1

    def _drop(self, which: np.ndarray | slice) -> int:
        """The outstanding messages of connections ``which`` time out, or are forgotten:
        how many of them were sent in the window (the warm-up's are not its timeouts)."""
        n = int(self.outstanding[which].sum())
        if self.early_left:
            early = int(self.early[which].sum())
            n -= min(early, n)
            self.early_left -= early
            self.early[which] = 0
        self.outstanding[which] = 0
        return n

    def stalls(self, now: int, timeout_ns: int, alive: np.ndarray) -> int:
        """A connection that waited ``timeout_ns`` with no reply: its outstanding messages
        time out, and it carries on (closed loop gets its credits back). Returns how many
        of them were sent in the measure window: a timeout belongs to the window its
        message was sent in."""
        stalled = alive & (self.outstanding > 0) & (now - self.last_progress > timeout_ns)
        if not stalled.any():
            return 0
        if self.loop.refills:
            self.credits[stalled] += self.outstanding[stalled]
        self.last_progress[stalled] = now
        return self._drop(stalled)

    def pending(self, alive: np.ndarray) -> int:
        """Messages still awaiting a reply on live connections."""
        return int(self.outstanding[alive].sum())

    def drop_pending(self, alive: np.ndarray) -> int:
        """The drain is over: messages still unanswered on live connections (returned) time
        out."""
        self._drop(~alive)
        return self._drop(alive)

    def closed(self, i: int) -> None:
        """Connection ``i`` closed: its outstanding messages stay unanswered (lost)."""
        self._drop(slice(i, i + 1))
        self.credits[i] = 0
        if self.due_from[i]:  # reopened, and closed again before it sent
            self.due_from[i] = 0
            self.resumed -= 1

    def joined(self, i: int, now: int) -> None:
        """Connection ``i`` connected mid-run (a stage added it)."""
        self.last_progress[i] = now
        self.release_at[i] = now
        self.loop.rejoin(self, i, now)

    def due_at(self, idx: np.ndarray) -> np.ndarray:
        """ns at which each of connections ``idx`` has its next message due (closed loop:
        its slot free and its think time over; open loop: its schedule)."""
        return self.loop.due_at(self, idx)

    def resume(self, i: int, now: int, due: int) -> None:
        """Connection ``i`` reopened (``now``) after the server closed it between messages:
        it picks up where it was. Its next message was due at ``due`` (ns), and its latency
        runs from then, the reopen included."""
        self.last_progress[i] = now
        self.release_at[i] = now
        self.loop.resume(self, i, now, due)

    def take_due(self, idx: np.ndarray, counts: np.ndarray, now: int) -> np.ndarray | int:
        """Closed loop: the intended send times of messages sent ``now``: ``now``, or when
        it was due for a reopened connection's first send (one entry per message)."""
        due = self.due_from[idx]
        waited = due > 0
        if not waited.any():
            return now
        self.due_from[idx] = 0
        self.resumed -= int(np.count_nonzero(waited))
        tint = np.where(waited, np.minimum(due, now), now)
        return tint.repeat(counts) if len(tint) < int(counts.sum()) else tint

    # ------------------------------------------------------------------ stages

    def stage_times(self, measure: int) -> list[int]:
        """ns at which the stages after the first begin."""
        return [measure + int(off * SEC) for off, _, _ in self.stages[1:]]

    def enter_stage(self, now: int, alive: np.ndarray, has_sock: np.ndarray) -> list[int]:
        """Next stage: switch to its rate; returns the connections to open. Connections past
        its count retire (stop sending, close once answered: :meth:`retired`)."""
        self.stage += 1
        _, active, rate = self.stages[self.stage]
        self._switch(loop_for(rate), now, alive)
        opening: list[int] = []
        for i in range(self.n):
            if i < active and self.retiring[i]:
                self.retiring[i] = False  # wanted again before it closed
                self.sends[i] = self.base_sends[i]
                self.loop.rejoin(self, i, now)
            elif i < active and not has_sock[i]:
                opening.append(i)
            elif i >= active and alive[i] and not self.retiring[i]:
                self.retiring[i] = True
                self.retire_at[i] = now
                self.sends[i] = False
                self.credits[i] = 0
        return opening

    def _switch(self, loop: ClosedLoop | OpenLoop, now: int, alive: np.ndarray) -> None:
        if loop.period == self.loop.period:
            return
        if loop.refills:  # back to the closed loop: each sender may fill its window again;
            # one with more than its window out (an open stage's backlog) owes the excess:
            # its credits go below zero, and its replies pay that back before it sends
            live = alive & self.sends
            self.credits[live] = self.inflight - self.outstanding[live]
        self.loop = loop
        self.period = loop.period
        self.sched_base = now  # a new schedule from here, same per-connection phases
        self.sched[:] = 0
        if loop.period:
            self.phase %= loop.period
            self.wheel = DueWheel(self.phase, loop.period, now)

    def retired(self, now: int, timeout_ns: int) -> list[int]:
        """Retiring connections whose replies are in (or whose timeout passed): to close."""
        done = self.retiring & ((self.outstanding == 0) | (now - self.retire_at > timeout_ns))
        self.retiring[done] = False
        return np.flatnonzero(done).tolist()


def _thinks(share: Share, pacing: Pacing, users: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Per local connection: the think time's low bound and span (ns), from its user class
    (``share.classes``) or the run's."""
    n = len(share.node)
    lo_s, hi_s = pacing.think_s, max(pacing.think_max_s, pacing.think_s)
    if not users or share.classes is None:
        lo = np.full(n, int(lo_s * SEC), dtype=np.int64)
        return lo, np.full(n, int(hi_s * SEC), dtype=np.int64) - lo
    c_lo = np.asarray([int(u.think_s * SEC) for u in users], dtype=np.int64)
    c_hi = np.asarray([int(max(u.think_max_s, u.think_s) * SEC) for u in users], dtype=np.int64)
    cls = share.classes
    return c_lo[cls], c_hi[cls] - c_lo[cls]
