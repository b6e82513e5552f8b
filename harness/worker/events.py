"""The worker as its transport's sink (harness.wire.sink.Sink): :class:`Events`, a base of
harness.worker.worker.Worker, takes what the transport tells it. Connections that open,
close, back up or fail; and once a round, its whole frames (:meth:`Events.frames`), parsed
once (a few echo frames in plain Python, else numpy over the round) and counted: validity,
errors, the ledger, pacing's credits and the recording; then the requests the transport
sent early."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from harness.core.plan import Plan
from harness.core.result import Share, WorkerResult
from harness.protocols.wire import Wire
from harness.wire.batch import SMALL_ROUND
from harness.wire.framing import Framing
from harness.wire.inbound import SMALL_READ, Inbound, Parsed
from harness.wire.protocol import InOrder, Stamped
from harness.wire.rounds import RoundBuffer
from harness.wire.transport import Transport
from harness.worker.delivery import Broadcast, Echo
from harness.worker.pacing import Pacer
from harness.worker.recording import Recorder
from workloads import Workload

NO_KINDS = np.zeros(0, dtype=np.uint16)  # (a step of one kind counts its sends as kind 0)


class Events:
    """What the transport tells the worker; the state is the worker's (set per step by
    :meth:`harness.worker.worker.Worker._new_step`)."""

    index: int
    plan: Plan
    wire: Wire
    workload: Workload
    rounds: RoundBuffer
    seq: int
    rec: Recorder
    pace: Pacer
    proto: Stamped
    deliv: Echo | Broadcast
    tp: Transport
    gid: np.ndarray
    gid_list: list[int]
    window_seq: int
    round_len: int
    echo: Echo | None
    small: Inbound | None
    ordered: bool
    n_kinds: int
    after_round: Callable[[Parsed, int], None] | None
    share: Share
    framing: Framing
    reconnecting: np.ndarray
    parked: np.ndarray
    n_parked: int
    due: np.ndarray
    up: np.ndarray
    down: np.ndarray
    running: bool
    sending: bool

    @property
    def res(self) -> WorkerResult:
        return self.rec.res

    # ------------------------------------------------------------------ connections

    def error(self, kind: str, count: int, now: int) -> None:
        self.rec.error(kind, count, now)

    def closed(self, i: int) -> None:
        """Connection ``i`` closed: on a fault, or by the worker itself (which then says
        the connection is not lost: :meth:`park`, a stage's retirement)."""
        if self.up[i] or self.reconnecting[i]:
            self.down[i] = True  # dropped, or its reopening failed
        self.up[i] = False
        self.reconnecting[i] = False
        self.due[i] = 0
        self.pace.closed(i)
        self.proto.forget(i)
        if self.wire.reconnect and self.running and self.sending and not self.share.stages:
            # reopened after a backoff, counted (the run's Wire says: ws --reconnect)
            self.reconnecting[i] = self.tp.schedule(i, time.monotonic_ns())

    def backlogged(self, i: int) -> None:
        self.pace.backlog[i] = True

    def unparsed(self, data: memoryview) -> None:
        self.rec.keep_unparsed(data)

    def reconnected(self, now: int) -> None:
        self.res.reconnects += 1

    def connected(self, i: int, elapsed_ns: int) -> None:
        self.rec.connected(elapsed_ns)
        self._ready(i)

    def tcp_connected(self, elapsed_ns: int) -> None:
        self.rec.connected(elapsed_ns)

    def handshaken(self, i: int, elapsed_ns: int) -> None:
        self.rec.handshaken(elapsed_ns)
        self._ready(i)

    def tls_failed(self, kind: str, reason: str) -> None:
        self.rec.tls_failed(kind, reason)

    def _ready(self, i: int) -> None:
        """Connection ``i`` may send: join the run if it is under way, send the hello."""
        self.up[i] = True
        self.down[i] = False
        if self.running:  # joined mid-run (a stage added it, or a reconnect)
            self.res.connected += not self.reconnecting[i]
            self.reconnecting[i] = False
            if self.due[i]:  # reopened after a close between requests: a reconnect
                self.res.reconnects += 1
                self.pace.resume(i, time.monotonic_ns(), int(self.due[i]))
                self.due[i] = 0
            else:
                self.pace.joined(i, time.monotonic_ns())
        hello = self.workload.hello(int(self.gid[i]))
        if hello:
            self.tp.send(i, memoryview(b"".join(self.framing.encode(h) for h in hello)))

    def park(self, i: int) -> None:
        """Close connection ``i`` (its server closed it, or said it would, between
        requests); while it has more to send, it is reopened when its next request is due
        (:meth:`_reopen_due`), as an HTTP client reopens on its next request."""
        self.tp.close(i)
        self.down[i] = False  # closed on purpose, not lost
        if self.sending and self.pace.sends[i] and self.pace.budget[i] > 0:
            self.parked[i] = True
            self.n_parked += 1

    def _reopen_due(self, now: int) -> None:
        """Reopen the parked connections whose next message is due (a reconnect, once
        connected); that message's latency runs from when it was due, the reopen included."""
        idx = np.flatnonzero(self.parked)
        due = self.pace.due_at(idx)
        for i, t in zip(idx[due <= now].tolist(), due[due <= now].tolist(), strict=True):
            self.parked[i] = False
            self.n_parked -= 1
            self.reconnecting[i] = True
            if self.tp.start_connect(i):  # (a connect that failed at once: lost)
                self.due[i] = max(t, 1)

    # ------------------------------------------------------------------ a round's frames

    def sent_early(self, conns: list[int], counts: list[int], times: list[int]) -> None:
        """Book the requests the transport sent within the round (harness.wire.rounds.Early), after
        the round's replies freed their slots: as :meth:`_send_round` books its own, with
        each one's send time as its stamp time."""
        if self.ordered and len(conns) <= SMALL_ROUND and not self.pace.resumed:
            assert isinstance(self.proto, InOrder)
            total = self.proto.push_few(conns, counts, times, self.gid_list, self.seq)
            if total >= 0:  # (else the ring grows first: below)
                assert self.tp.early is not None
                self.pace.commit_early(conns, counts, times[-1], self.rec.measuring)
                self.seq += total
                self.rec.sent(total, total * len(self.tp.early.reqs[1]), NO_KINDS, times[-1])
                return
        idx = np.asarray(conns, dtype=np.int64)
        cnt = np.asarray(counts, dtype=np.int64)
        tint = np.asarray(times, dtype=np.int64)
        total = int(cnt.sum())
        if total > len(conns):
            tint = tint.repeat(cnt)
        now = times[-1]
        self.pace.commit(idx, cnt, now, self.rec.measuring)
        _data, ends, kinds = self.proto.build(self.gid[idx].repeat(cnt), idx, cnt, self.seq,
                                              tint, 0)
        self.seq += total
        self.rec.sent(total, int(ends[-1]), kinds, now)

    def _small_rounds(self) -> None:
        """Which small rounds are parsed and counted in lists (numpy's fixed cost per call
        dominates a round of a few frames): fixed-size echo frames of one kind (``small``),
        or one kind of in-order replies (``ordered``: HTTP, redis, memcached)."""
        self.echo = self.deliv if isinstance(self.deliv, Echo) else None
        one = self.echo is not None and self.n_kinds == 1
        self.small = (self.proto.inbound if type(self.proto) is Stamped and self.proto.fixed
                      and one else None)
        self.ordered = isinstance(self.proto, InOrder) and one and self.proto.walks

    def frames(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
               seg_t: list[int], walk: list[int] | None) -> None:
        self.round_len = seg_end[-1]
        # the round's last time (kernel arrival stamps are in read order, not time order)
        t_last = max(seg_t) if self.tp.stamped_rx else seg_t[-1]
        if self.small is not None:
            few = self.small.take_few(buf, seg_conn, seg_end, seg_t, self.index,
                                      self.gid_list)
            if few is not None:
                self._account_few(t_last, *few)
                return
        elif self.ordered and walk is not None and len(walk) == len(seg_conn) <= SMALL_READ \
                and self._ordered_few(seg_conn, seg_end, seg_t, walk, t_last):
            return
        p = self.proto.parse(buf, seg_conn, seg_end, seg_t, walk)
        self._account(p, t_last)
        if self.after_round is not None:  # HTTP statuses, redis/memcached replies by kind
            self.after_round(p, t_last)

    def _account(self, p: Parsed, t_last: int) -> None:
        """Everything one round's frames change: counters, histograms, ledger, credits."""
        if p.bad_conns:
            self.rec.keep_unparsed(self.rounds.mv[:self.round_len])
        for c in p.bad_conns:
            if self.tp.alive[c]:
                self.tp.fail(c, "protocol")
        self.rec.last_rx = t_last
        st, conn, t, flen = p.st, p.conn, p.t, p.flen
        valid = self.deliv.valid(p)
        if np.count_nonzero(valid) < len(valid):
            bad = self._count_invalid(p.ok, valid, p.flen, t_last, self._unsolicited(p))
            if self.deliv.mangled_frees_slot and bad.any():
                self.pace.credit(conn[bad], t_last)
                self.deliv.loose = True  # the slots alone no longer say the drain is over
            st, conn, t, flen = st[valid], conn[valid], t[valid], flen[valid]
        self.rec.res.replies += len(t)
        if self.pace.early_left:  # replies to warm-up messages: not the window's to time out
            own = (st["seq"] < self.window_seq) & (st["worker"] == self.index) & \
                (st["conn"] == self.gid[conn])
            self.pace.answered_early(conn[own])
        self.pace.credit(self.deliv.record(conn, st, t), t_last)
        if self.rec.measuring and len(t):
            self.rec.received(st, t, flen, t_last, self.pace.period > 0)

    def _ordered_few(self, conn: list[int], end: list[int], t: list[int], walk: list[int],
                     t_last: int) -> bool:
        """A small round of in-order replies, one a read, booked as :meth:`_account`
        and ``after_round`` would, in lists (the ring's pop: in C when built), when every
        reply answers a request waiting and the protocol counts nothing of its own in it
        (:meth:`Wire.few_code`). False, with nothing changed: numpy's parse takes it."""
        code = self.wire.few_code(len(conn))
        if code is None:
            return False
        assert isinstance(self.proto, InOrder)
        got = self.proto.pop_few(conn)
        if got is None:
            return False
        self.wire.book_few(code, len(conn))
        walk.append(end[-1])  # (each reply's length: from its start to the next one's)
        seqs, tint, delay = got
        self._account_few(t_last, conn, t, seqs, tint, delay, walk)
        return True

    def _account_few(self, t_last: int, conn: list[int], t: list[int], seqs: list[int],
                     tint: list[int], delay: list[int], starts: list[int] | None = None
                     ) -> None:
        """A small round of good echo frames, each this worker's own on its connection
        (:meth:`~harness.wire.inbound.Inbound.take_few`), or of in-order replies (``starts``:
        where each starts, and the round's end), in plain Python (no arrays): what
        :meth:`_account` does with them."""
        rec = self.rec
        rec.last_rx = t_last
        rec.res.replies += len(t)
        assert self.echo is not None  # small rounds are echo deliveries
        if self.pace.early_left:
            self.pace.answered_early([c for c, s in zip(conn, seqs, strict=True)
                                      if s < self.window_seq])
        self.echo.ledger.record_few(seqs)
        self.pace.credit_few(conn, t_last)
        if rec.measuring:
            rec.received_few(t, tint, delay, t_last, self.pace.period > 0, starts)

    def _unsolicited(self, p: Parsed) -> np.ndarray | None:
        """In-order matching: replies with no request waiting. Each connection that got one
        is out of step: one protocol error, and it closes (whatever else it got this round
        still counts). Returns the mask of those replies (counted with their connection,
        not one by one), or None."""
        if not p.unsolicited:
            return None
        self.rec.keep_unparsed(self._first_bad(p.ok, p.flen))
        for c in p.unsolicited:
            if self.tp.alive[c]:
                self.tp.fail(c, "protocol")
        return ~p.ok

    def _count_invalid(self, ok: np.ndarray, valid: np.ndarray, flen: np.ndarray,
                       now: int, skip: np.ndarray | None = None) -> np.ndarray:
        """Protocol errors: frames without a good stamp (unless the workload expects some),
        and good stamps another connection or worker sent (``skip``: frames counted
        otherwise). Returns the mask of the frames counted (each one error, once)."""
        lenient = self.workload.ignore_unstamped
        bad = ~valid if not lenient else ok & ~valid
        if skip is not None:
            bad &= ~skip
        n = int(np.count_nonzero(bad))
        if n:
            if not lenient and np.count_nonzero(ok) < len(ok):
                self.rec.keep_unparsed(self._first_bad(ok, flen))
            self.rec.error("protocol", n, now)
        return bad

    def _first_bad(self, ok: np.ndarray, flen: np.ndarray) -> memoryview:
        """The bytes of the round's first frame without a good stamp, when the round buffer
        holds its frames back to back (else the whole round)."""
        whole = self.rounds.mv[:self.round_len]
        if int(flen.sum()) != self.round_len:
            return whole
        k = int(np.argmin(ok))
        at = int(flen[:k].sum())
        return whole[at:at + int(flen[k])]
