"""The worker's sends, beside its loop (harness.worker.worker.Worker, a :class:`Sends`):
once pacing has committed a round's messages, build them (numpy over the round, or a small
round without arrays) and send them, one send per connection."""

from __future__ import annotations

import numpy as np

from harness.core.result import Times
from harness.wire.batch import SMALL_OPEN, SMALL_ROUND, Outbound
from harness.wire.restamp import Lag
from harness.worker.events import Events

NO_KINDS = np.zeros(0, dtype=np.uint16)


class Sends(Events):
    """Builds and sends what pacing committed; the state is the worker's."""

    out: Outbound
    times: Times
    restamp: tuple[int, bool, int, bool] | None  # (stamp offset, ASCII, size or 0, in ws)

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
