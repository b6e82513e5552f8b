"""The worker's sends, beside its loop (harness.worker.worker.Worker, a :class:`Sends`):
once pacing has committed a round's messages, build them (numpy over the round, or a small
round without arrays) and send them, one send per connection."""

from __future__ import annotations

import os
import time

import numpy as np

from harness.core.result import Times
from harness.wire import fused
from harness.wire.batch import SMALL_OPEN, SMALL_ROUND, Outbound
from harness.wire.inbound import SMALL_READ
from harness.wire.poller import MAX_EVENTS
from harness.wire.restamp import Lag
from harness.wire.rounds import CHUNK
from harness.wire.timer import Timer
from harness.wire.transport import Transport
from harness.worker.events import NO_KINDS, Events
from harness.worker.loops import MAX_BURST, NO_CONNS, PICK_FEW
from harness.worker.pacing import BEHIND_US

# most frames a fused open loop's read round takes (its C costs the same per frame at any
# size; a read after a tick's pause may hold several instants' replies, and more would send
# the round to numpy's parse)
OPEN_READ = 1024
FUSED = os.environ.get("HARNESS_FUSED", "1") != "0"  # =0: no fused rounds (to compare)


class Sends(Events):
    """Builds and sends what pacing committed; the state is the worker's."""

    out: Outbound
    times: Times
    restamp: tuple[int, bool, int, bool] | None  # (stamp offset, ASCII, size or 0, in ws)
    fuse: tuple | None  # a fused round's context (harness.wire.fused), when the step has one
    end_ns: int  # the end of sending (ns; far off when the budget decides)
    next_tick: int  # the loop's next tick (ns)
    round_counts: list[int]  # select rounds: in all, and measuring while sending
    timer: Timer | None
    defers: bool  # an open loop reads at its send instants (Worker._clocks)

    def _deferring(self) -> bool:  # (the worker's: Worker._deferring)
        raise NotImplementedError

    def _send_round(self, now: int) -> None:
        rec, pace = self.rec, self.pace
        if not rec.measuring and now >= self.times.measure:
            # a message is in the window when its stamp time is: every receiver (in any
            # worker) decides by the stamp, so the sender must count by the same clock read
            self._start_measure()
        if pace.plain_closed(rec.measuring):  # pick and commit in one call (C when built)
            got = pace.take_closed(now, self.tp.blocked, rec.measuring)
            if got is not None:
                self._send_closed(*got, now)
            return
        few = bool(pace.period) and self.small is not None  # open: a few picked in lists
        picked = (pace.pick_few if few else pace.pick)(now, self.tp.alive, self.tp.blocked,
                                                        rec.measuring)
        if picked is None:
            return
        if few and len(picked[0]) <= SMALL_OPEN:
            self._send_few_open(picked[0], picked[1], now)
            return
        idx, counts = np.asarray(picked[0], dtype=np.int64), np.asarray(picked[1],
                                                                         dtype=np.int64)
        if self.small is not None and not pace.period and len(idx) <= SMALL_ROUND:
            pace.commit(idx, counts, now, rec.measuring)  # closed loop: all due now
            self._send_few(idx.tolist(), counts.tolist(), now)
            return
        tint, delay, behind = pace.commit(idx, counts, now, rec.measuring)
        rec.res.behind += behind
        self._send_built(idx, counts, now, tint, delay)

    def _start_measure(self) -> None:
        self.window_seq = self.seq
        self.rec.start_measure()
        self.deliv.start(self.seq, self.times.measure, self.times.shifts)

    def _send_built(self, idx: np.ndarray, counts: np.ndarray, now: int,
                    tint: np.ndarray | int, delay: np.ndarray | int) -> None:
        """Build the committed messages with numpy (intended times ``tint``, delays
        ``delay``) and send them."""
        rec, total = self.rec, int(counts.sum())
        ones = total == len(idx)  # one message each (the open loop's usual round)
        gids = self.gid[idx] if ones else self.gid[idx].repeat(counts)
        data, ends, kinds = self.proto.build(gids, idx, counts, self.seq, tint, delay)
        self.seq += total
        if self.pace.period and rec.measuring and self.deliv.sent_by_stamp:
            rec.sent_by_stamp(np.asarray(tint), ends, kinds, now)
        else:
            rec.sent(total, int(ends[-1]), kinds, now)
        lag = self._lag(now, ends)
        self.tp.send_round(idx, (ends if ones else ends[counts.cumsum() - 1]).tolist(), data,
                           lag)
        if lag is not None and len(lag) > 5 and lag[5]:  # in-order: the stamps kept here
            self.proto.add_lags(idx, counts, lag[5])

    def _lag(self, now: int, ends: np.ndarray | None = None) -> Lag | None:
        """How the round's sends restamp their messages (harness.wire.restamp): one clock
        read a round stamps them, and the sends go out one after another, so each adds to
        its messages' delay how long after ``now`` it went out (the closed loop times
        latency from there, the open loop its service time); an in-order protocol gets
        each send's lag for the stamps it keeps. None: the protocol keeps its round's time
        (Wire.restamp)."""
        r = self.restamp
        if r is None:
            return None
        hdr, ascii_, size, ws = r
        if hdr < 0:  # an in-order protocol: each send's lag, for the stamps it keeps
            return -1, False, now, 0, False, []
        if size:
            return hdr, ascii_, now, size, ws
        return (hdr, ascii_, now, ends, ws) if ends is not None else None

    def _send_closed(self, conns: list[int], counts: list[int], total: int, now: int) -> None:
        """A plain closed loop's committed round (:meth:`Pacer.take_closed`): each message
        intended now, no delay."""
        if self.small is not None and len(conns) <= SMALL_ROUND:
            self._send_few(conns, counts, now)
        else:
            self._send_built(np.asarray(conns, dtype=np.int64),
                             np.asarray(counts, dtype=np.int64), now, now, 0)

    def _send_few(self, conns: list[int], counts: list[int], now: int) -> None:
        """A small closed-loop round of one-size echo messages, committed (all intended
        now), built without arrays."""
        gids = self.gid_list
        data, bounds, total = self.out.build_few([gids[i] for i in conns], counts, self.seq,
                                                 now)
        self.seq += total
        self.rec.sent(total, len(data), NO_KINDS, now)  # (one kind: kinds are not looked at)
        self.tp.send_round(conns, bounds, data, self._lag(now))

    def _send_few_open(self, idx: np.ndarray | list[int], counts: np.ndarray | list[int],
                       now: int) -> None:
        """A small open-loop round of one-size echo messages, in plain Python: what
        :meth:`_send_round` does with it (each message stamped with its intended time)."""
        rec = self.rec
        conns = idx if isinstance(idx, list) else idx.tolist()
        cnt = counts if isinstance(counts, list) else counts.tolist()
        tint, delay, behind = self.pace.commit_few(conns, cnt, now, rec.measuring)
        rec.res.behind += behind
        gids = self.gid_list
        data, bounds, total = self.out.build_few_at([gids[i] for i in conns], cnt, self.seq,
                                                    tint, delay)
        self.seq += total
        rec.sent(total, len(data), NO_KINDS, now)  # (echo: counted by the send's clock read)
        self.tp.send_round(conns, bounds, data, self._lag(now))

    # ------------------------------------------------------------------ fused rounds

    def _fusing(self) -> tuple | None:
        """A fused round's context (harness.wire.fused) when every round of the step may
        be one: a closed loop, or an open loop that defers its reads (Worker._clocks), with
        no think times, stages or budget, of one-size echo frames on plain TCP, with no
        early sends. Else None."""
        pace, tp, inb = self.pace, self.tp, self.small
        r = self.restamp
        if (not FUSED or inb is None or inb.fixed is None or self.echo is None
                or tp.early is not None or tp.tls is not None or pace.thinks or pace.budgeted
                or (pace.period and not self.defers)
                or self.share.stages or type(tp) is not Transport
                or self.out.ascii or inb.fixed != self.out.specs[0] or inb.hdr != self.out.hdr
                or (r is not None and not r[2])):
            return None
        return fused.context(
            tp.socks, tp.pend_in, CHUNK, inb.fixed, tp.stamped_rx, inb.hdr, inb.body, inb.key,
            self.index, self.gid_list, OPEN_READ if pace.period else SMALL_READ,
            pace.outstanding, pace.credits,
            pace.last_progress, pace.loop.refills, tp.blocked, pace.early, inb.fixed,
            self.index << 16, self.out.key, r, SMALL_ROUND)

    def _fused_loop(self) -> bool | None:
        """In the window and sending, the rounds until the next tick (or the series' next
        second, or the end of sending) in one call (harness.wire.fused.echo_loop), booked
        together; then the round that ended them, as :meth:`_fused_round` books one. None
        when this round may not be one (the loop then polls as usual); else as
        :meth:`_fused_round`."""
        rec, pace = self.rec, self.pace
        if not (rec.measuring and self.sending) or pace.early_left or pace.resumed:
            return None
        # until the next tick, the series' next second or the end of sending: not when
        # that is past (the series' second is the usual path's to roll)
        stop_at = min(self.next_tick, rec.cur_hi, self.end_ns)
        if stop_at <= time.monotonic_ns():
            return None
        if pace.period:
            return self._fused_open(stop_at) if self._deferring() else None
        assert self.echo is not None and self.fuse is not None
        ledger, times, sel = self.echo.ledger, self.times, self.tp.sel
        # (with C, the rounds' latencies are bucketed straight into the latency histogram,
        # with no Python object a frame; the pure build keeps its lists and numpy's parse)
        acc, last = fused.echo_loop(
            self.fuse, sel.handle, sel.data, MAX_EVENTS, rec.cur_lo, stop_at, self.rounds.buf,
            self.out.flat, ledger.seen, ledger.lo, self.seq, times.begin, times.measure,
            self.end_ns, rec.res.latency.bins if fused.native is not None else None,
            rec.timeout_ns)
        polls, replies, t_last, got, lats, lo, hi, marked, sent, nbytes, first, now, bins = acc
        self._booked_all(polls, replies, t_last, got, lats and (lats, lo, hi, None, 0, 0),
                         marked, sent, nbytes, first, now)
        if bins[0]:
            rec.bucketed(*bins)
        if last is None:
            return False
        if last[0] != fused.POLLED:
            return self._fused_result(last)
        ready = self.tp.ready_of(last[1], last[2], self.timer)
        return bool(ready) and self._fused_round(ready)

    def _fused_open(self, stop_at: int) -> bool:
        """An open loop's instants until the next tick (or the series' next second, or the
        end of sending) in one call (harness.wire.fused.open_loop), booked together; then
        what ended them. True when the loop's send round has nothing left to do."""
        assert self.echo is not None and self.fuse is not None
        rec, pace, tp, times, ledger = self.rec, self.pace, self.tp, self.times, self.echo.ledger
        w, sel = pace.wheel, tp.sel
        acc, w.seen, lag, pace.wake_at, last = fused.open_loop(
            self.fuse, sel.handle, sel.data, MAX_EVENTS, rec.cur_lo, stop_at,
            (w.order, w.offs, w.period, w.base, w.seen, w.laggards.tolist()),
            (pace.sched_base, pace.period, pace.phase, pace.sched, tp.alive, pace.sends,
             pace.backlog, MAX_BURST, BEHIND_US, PICK_FEW, SMALL_OPEN),
            self.rounds.buf, self.out.flat, ledger.seen, ledger.lo, self.seq, times.begin,
            times.measure, self.end_ns)
        self.sleep_to = 0  # (slept in the call)
        w.laggards = np.array(lag, dtype=np.int64) if lag else NO_CONNS
        self._booked_all(*acc)
        if last is None:  # at its time, or an instant too large: the send round's
            return False
        what = last[0]
        if what == fused.BEHIND:
            idx, want, delay = (np.asarray(x, dtype=np.int64) for x in last[1:4])
            rec.res.behind += pace.behind(idx, want, delay, last[4])
        elif what == fused.UNSENT:
            tp.send_round(last[1], last[2], self.out.flat, None, last[3])
        elif what == fused.POLLED:
            ready = tp.ready_of(last[1], last[2], self.timer)
            if ready:
                tp.read_round(ready)
        elif what == fused.BOOK:
            self._booked(*last[1:6])
        else:
            return self._fused_result(last)
        return True

    def _booked_all(self, polls: int, replies: int, t_last: int, got: int, lats: tuple | None,
                    marked: int, sent: int, nbytes: int, first: int, now: int) -> None:
        """What the rounds of a fused loop did together, counted as the usual path does."""
        self.round_counts[0] += polls
        self.round_counts[1] += polls
        if replies:
            self._booked(replies, t_last, got, lats, marked)
        if sent:
            self.seq += sent
            self.rec.sent(sent, nbytes, NO_KINDS, now, first)

    def _fused_round(self, ready: list[int]) -> bool:
        """A round over ``ready`` in one call (harness.wire.fused.echo_round), booked here;
        where the call stopped short, the usual path goes on from there. True when the
        round's send was done too."""
        assert self.echo is not None and self.fuse is not None  # (so _fusing says)
        rec, times, ledger = self.rec, self.times, self.echo.ledger
        return self._fused_result(fused.echo_round(
            self.fuse, ready, self.rounds.buf, self.out.flat, ledger.seen, ledger.lo, self.seq,
            rec.measuring, self.sending, times.begin, times.measure, self.end_ns))

    def _fused_result(self, r: tuple) -> bool:
        what = r[0]
        if what == fused.ROUND:
            self._booked(*r[1:6])
            self._book_send(*r[6:])
            return True
        if what == fused.READ:
            self.tp.plain_read_round(r[9], r[1:9])
        elif what == fused.PARSE:
            self.frames(self.rounds.buf, r[1], r[2], r[3], None)
        else:
            self._account_few(*r[1:])
        return False

    def _booked(self, replies: int, t_last: int, got: int, lats: tuple | None, marked: int
                ) -> None:
        """The replies of whole fused rounds, counted as the usual path counts them."""
        rec = self.rec
        rec.last_rx = t_last
        rec.res.replies += replies
        assert self.echo is not None
        self.echo.ledger.receipts += marked
        if rec.measuring:
            rec.counted(got, t_last, lats)

    def _book_send(self, send: int, now: int, conns: list[int] | None,
                   counts: list[int] | None, total: int, bounds: list[int] | None,
                   failed: list | None) -> None:
        """A whole fused round's send, counted (or done) as the usual path does."""
        rec = self.rec
        if send == fused.SENT:
            assert conns is not None and bounds is not None
            if not rec.measuring:
                self.pace.early_left += total
            self.seq += total
            rec.sent(total, bounds[-1], NO_KINDS, now)
            if failed:
                self.tp.send_round(conns, bounds, self.out.flat, None, failed)
        elif send == fused.EDGE:
            self._send_round(now)
        elif send == fused.BIG:
            assert conns is not None and counts is not None
            if not rec.measuring:
                self.pace.early_left += total
            self._send_closed(conns, counts, total, now)
