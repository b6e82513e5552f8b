"""One worker: a short shell that wires, for each step, a fresh transport, protocol,
delivery, pacing and recording, and runs the select loop over them a round at a time.

Each round: the transport receives from every ready socket into one shared buffer (one
clock read per ``recv``); the protocol turns the round into arrays once; the delivery
says which replies are valid and whom they answer; pacing frees slots and picks the next
sends; recording counts what falls in the measure window. Then every connection's next
messages are built and sent at once.

Times are ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from harness.core.plan import Plan
from harness.core.result import Share, Times, WorkerResult
from harness.core.units import SEC
from harness.protocols import of_run
from harness.protocols.tls import client_context
from harness.protocols.wire import wire_of
from harness.wire import framing as framing_mod
from harness.wire.batch import Outbound, size_bounds
from harness.wire.connects import expire_connects, open_all
from harness.wire.poller import READ, Poller
from harness.wire.protocol import Stamped
from harness.wire.rounds import Early, RoundBuffer
from harness.wire.timer import Timer
from harness.wire.transport import TIMER, Transport, connect_kind
from harness.worker.delivery import Broadcast, delivery_for
from harness.worker.pacing import Pacer
from harness.worker.recording import Recorder, run_queue_wait_ns
from harness.worker.sends import Sends
from workloads import Workload

__all__ = ["Progress", "Worker", "connect_kind"]

BIG_NS = 1 << 62  # a time after every run
Progress = Callable[[dict], bool]  # called about once a second; returns False to stop


# kernel receive stamps on plain TCP, and each send's lag behind its round's clock read in
# its stamps' delay (=0: the clock after each read, no deferred reads; no lag; to compare)
RX_STAMPS = os.environ.get("HARNESS_RX_STAMPS", "1") != "0"
SEND_LAG = os.environ.get("HARNESS_SEND_LAG", "1") != "0"


class Worker(Sends):
    """Runs the steps handed to it. Owns sockets only for the duration of a step."""

    def __init__(self, index: int, plan: Plan, workload: Workload, addrs: list[tuple]) -> None:
        self.index = index
        self.plan = plan
        self.workload = workload
        self.addrs = addrs  # (family, sockaddr) per target
        fr = framing_mod.get(workload.framing or plan.framing)
        self.framing = fr
        kinds = list(plan.mix) if plan.mix else workload.kinds()
        self.n_kinds = len(kinds)
        fillers = [workload.filler(i, size_bounds(k.size)[1]) for i, k in enumerate(kinds)]
        self.out = Outbound(fr, kinds, fillers, 0, index, plan.seed * 7919 + index,
                            corpus=list(plan.corpus) or None,
                            by_connection=plan.mix_by == "connection")
        self.matching = getattr(workload, "matching", "stamp")
        size = kinds[0].size
        fixed = size if self.out.fixed and isinstance(size, int) else None
        self.fixed = (fixed if fr.header and not workload.ignore_unstamped
                      and self.matching == "stamp" else None)
        # the run's protocol, looked up (harness.protocols): its part in each step
        scheme = plan.targets[0].scheme if plan.targets else "tcp"
        protocol = getattr(workload, "protocol", "framed") if plan.targets else "framed"
        self.wire = wire_of(of_run(protocol, scheme), self)
        # the client TLS context of a TLS plan, offering the protocol's ALPN (None: plain TCP)
        self.tls = client_context(plan.tls, self.wire.alpn) if plan.tls is not None else None
        self.timer = Timer.create()  # precise open-loop wake-ups (None: select timeouts)
        self.rounds = RoundBuffer()
        self.seq = 0  # next message number (dense per worker, across steps)
        self.seq0 = 0  # self.seq when the step began sending

    # ------------------------------------------------------------------ step set-up

    def _new_step(self, share: Share, sel: Poller) -> None:
        """Fresh per-step state: nothing carries over from the last step but ``seq``."""
        plan, n = self.plan, len(share.node)
        self.share = share
        self.gid = share.gids.astype(np.int64)
        self.rec = Recorder(self.index, n, self.n_kinds, self.fixed)
        self.pace = Pacer(share, plan.pacing, plan.seed * 104729 + self.index, plan.users)
        self.proto: Stamped = self.wire.protocol(share.key)
        self.reconnecting = np.zeros(n, dtype=bool)  # closed on the server's word, reopening
        self.parked = np.zeros(n, dtype=bool)  # HTTP: closed between requests, reopened when
        self.n_parked = 0  # ... its next request is due (:meth:`park`)
        self.due = np.zeros(n, dtype=np.int64)  # reopening: ns its next message was due
        self.up = np.zeros(n, dtype=bool)  # connected (ready to send)
        self.down = np.zeros(n, dtype=bool)  # lost: up once, now down by a fault
        self.deliv = delivery_for(self.workload.delivery, self.index, self.gid, share.node,
                                  len(self.addrs), share.expect_deliveries)
        self.tp: Transport = self.wire.transport(share, sel, self.tls)
        self._clocks()
        self.times = Times(0, 1 << 62, None)
        self.timeout_ns = int(plan.timeout_s * SEC)
        self.accepted = np.zeros(1000, dtype=bool)  # HTTP status code -> not an error
        self.accepted[list(plan.accept)] = True
        self.running = False
        self.round_counts = [0, 0]  # select rounds: in all, and measuring while sending
        self.sending = True
        self.hi = self.seq  # first seq after the window
        self.window_seq = 1 << 62  # first seq of the window, once it opens
        self.drain_until: int | None = None
        self.round_len = 0  # bytes of whole frames in the round buffer this round
        self.gid_list: list[int] = self.gid.tolist()
        self._small_rounds()
        self.early = self._early()
        self.tp.early = self.early
        self.after_round = self.wire.after_round  # the protocol's counts after a round
        self.fuse = self._fusing()
        self.wire.joined(self.tp)

    def _clocks(self) -> None:
        """Where the step's times come from. On plain TCP each read's time is the kernel's
        (its arrival): a client late to read does not add its lateness to latency, and an
        open loop may read at its send instants only (:meth:`_deferring`), when a
        connection gets at most about one reply between two instants. Stamped frames on
        plain sockets: each send's messages carry in their delay how long after the round's
        clock read it went out (Sends._lag); a closed loop times from there."""
        self.tp.stamped_rx = RX_STAMPS and self.tls is None
        self.defers = (self.tp.stamped_rx and not self.share.stages and self.timer is not None
                       and self.pace.period >= 2 * self.pace.grid)
        self.sleep_to = 0  # the loop waits for its timer alone, until this ns (0: not)
        self.rec.monotone = not self.tp.stamped_rx
        self.restamp = self.wire.restamp() if SEND_LAG else None
        if isinstance(self.deliv, Broadcast):  # closed loop: fan-out times from the send
            self.deliv.ledger.from_send = not self.pace.period

    def _early(self) -> Early | None:
        """Whether connections send their next request as soon as their replies are read
        (harness.wire.rounds.Early): the closed loop without think times, stages or a message
        budget, one fixed request (HTTP or redis/memcached), plain TCP, echo delivery."""
        pace = self.pace
        req = self.wire.early_request()
        if (req is None or type(self.tp) is not Transport or self.tp.tls is not None
                or pace.period or pace.thinks or pace.budgeted or self.share.stages
                or self.n_kinds != 1 or self.echo is None):
            return None
        return Early(req, pace.outstanding)

    @property
    def socks(self) -> list:
        return self.tp.socks

    @property
    def measuring(self) -> bool:
        return self.rec.measuring

    def connect(self, share: Share, sel: Poller, deadline_ns: int,
                stop: Callable[[], bool] | None = None) -> None:
        """Open this worker's connections (rate-limited if asked), bounded by a deadline;
        ``stop()`` true (polled each pass) abandons the attempt, result marked partial."""
        self._new_step(share, sel)
        if self.timer is not None and self.timer.fileno() not in sel:
            self.timer.clear()
            sel.register(self.timer, READ, TIMER)
        plan = self.plan
        rate = plan.connect_rate / max(plan.workers, 1) if plan.connect_rate > 0 else 0.0
        want = share.stages[0][1] if share.stages else len(share.node)
        if open_all(self.tp, want, rate, int(plan.connect_timeout_s * SEC), deadline_ns, stop):
            self.res.partial = True
            self.close_all()
        self.res.connected = int(self.tp.alive.sum())
        made = self.tp.done[:want] > 0  # the ramp: (began, completed) per connect made
        self.res.ramp = np.stack([self.tp.started[:want][made], self.tp.done[:want][made]], 1)
        self.res.node_connected = np.bincount(share.node[self.tp.alive],
                                              minlength=len(self.addrs))

    # ------------------------------------------------------------------ the loop

    def run(self, times: Times, ctrl_poll: Progress | None = None) -> WorkerResult:
        """Warm-up, measure, drain; returns the step's result (``partial`` if stopped)."""
        self.times = times
        self.end_ns = times.end if times.end is not None else BIG_NS
        self.rec.begin(times, self.timeout_ns)
        self.pace.start(times.begin, self.tp.alive)
        self.running = True
        stage_at = self.pace.stage_times(times.measure)
        cpu0, wait0 = os.times(), run_queue_wait_ns()
        self.seq0 = self.seq
        self.next_tick = times.begin + SEC // 10
        next_report = times.begin + SEC
        while True:
            now = time.monotonic_ns()
            if self._edges(now, stage_at):
                break
            sent = self._io_round(self._wait_s(now))  # (an instant sent before reading)
            now = time.monotonic_ns()
            if not sent and self.sending and now >= times.begin and \
                    (times.end is None or now < times.end):
                if self.n_parked:
                    self._reopen_due(now)
                self._send_round(now)
            if now >= self.next_tick:
                self.next_tick = now + SEC // 10
                next_report = self._tick(now, next_report, ctrl_poll)
        return self._finish(cpu0, wait0)

    def _edges(self, now: int, stage_at: list[int]) -> bool:
        """Window edges: measure start, stages, end of sending. True when the drain is over."""
        if not self.rec.measuring and now >= self.times.measure:
            self._start_measure()
        while stage_at and now >= stage_at[0]:
            stage_at.pop(0)
            self._enter_stage(now)
        if self.sending and self._sending_over(now):
            self._stop_sending(now)
            self.drain_until = now + self.timeout_ns
        if self.drain_until is not None and self._drained(now):
            left = self.pace.drop_pending(self.tp.alive)
            if left:  # never answered within --timeout of the end of sending
                self.rec.error("timeout", left, now)
            return True
        return False

    def _tick(self, now: int, next_report: int, ctrl_poll: Progress | None) -> int:
        """Every ~100 ms: reply timeouts, stage retirements, and once a second progress."""
        # the transport's own timers (ws: pings, reconnects due)
        self.tp.tick(now, self.sending, int(self.plan.connect_timeout_s * SEC))
        timed_out = self.pace.stalls(now, self.timeout_ns, self.tp.alive)
        if timed_out:
            self.rec.error("timeout", timed_out, now)
        if self.share.stages:
            for i in self.pace.retired(now, self.timeout_ns):
                self.tp.close(i)
                self.down[i] = False  # retired, not lost
        if self.share.stages or self.reconnecting.any():  # connects begun mid-run
            expire_connects(self.tp, now, int(self.plan.connect_timeout_s * SEC))
        if now >= next_report:
            next_report += SEC
            if not self._report(now, ctrl_poll) and self.drain_until is None:
                # stopped: give the messages in flight a short drain, so they are not
                # counted lost merely because the run was cut short
                self.drain_until = now + min(self.timeout_ns, SEC)
        return next_report

    def _io_round(self, wait: float) -> bool:
        """Poll and read; True when this round was a send instant (:meth:`_instant`)."""
        if self.fuse is not None:  # rounds in one call, if it may (Sends._fused_loop)
            fused = self._fused_loop()
            if fused is not None:
                return fused
        instant = bool(self.sleep_to)
        if instant:  # reading deferred to the next send instant (see _deferring)
            self._instant()
            ready = self.tp.poll(0.0, None)
        else:
            ready = self.tp.poll(wait, self.timer)
        now = time.monotonic_ns()
        counts = self.round_counts
        counts[0] += 1
        if not self.rec.measuring and now >= self.times.measure:
            self._start_measure()
        if self.rec.measuring and self.sending:
            counts[1] += 1
        if ready:
            if self.fuse is not None and not self.pace.period and not self.pace.early_left \
                    and not self.pace.resumed:  # a closed loop's round in one call
                return self._fused_round(ready)  # (True: it sent too)
            if self.early is not None:
                self.early.until = self._early_until(now)
            self.tp.read_round(ready)
        return instant

    def _instant(self) -> None:
        """Sleep to the next send instant (the timer alone wakes it), then send what is due
        before reading: the replies wait in the kernel, stamped with their arrival."""
        assert self.timer is not None
        self.timer.sleep_until(self.sleep_to)
        self.sleep_to = 0
        now = time.monotonic_ns()
        end = self.times.end
        if self.sending and (end is None or now < end):
            self._send_round(now)

    def _early_until(self, now: int) -> int:
        """Until when (ns) the transport may send early this round: not before the start
        nor after the end of sending, and not across the measure start (a request is in the
        window by its stamp time, and the sender counts it by ``measuring``)."""
        times = self.times
        if not self.sending or now < times.begin:
            return 0
        if not self.rec.measuring:
            return times.measure
        return times.end if times.end is not None else BIG_NS

    def _wait_s(self, now: int) -> float:
        if not self.sending or now < self.times.begin:
            return 0.01
        wait = self._wait_pacing_s(now)
        if self.n_parked:  # wake when the next parked connection is due
            nxt = int(self.pace.due_at(np.flatnonzero(self.parked)).min())
            wait = min(wait, max(nxt - now, 0) / SEC)
        return wait

    def _wait_pacing_s(self, now: int) -> float:
        if self.pace.period:  # wake exactly at the next scheduled send
            nxt = self.pace.next_send(self.tp.alive, self.tp.blocked)
            if nxt is None:
                return 0.01
            if nxt <= now:  # due already: poll without waiting (and without the timer)
                return 0.0
            if self.defers and self._deferring():
                self.sleep_to = min(nxt, now + SEC // 20)  # (ticks still come)
                return 0.0
            if self.timer is not None:
                self.timer.want(nxt)  # armed by the poll, only if it has to sleep
                return 0.05
            return min(max(nxt - now, 0) / SEC, 0.01)
        if self.pace.thinks:  # wake when the next think time ends
            nxt = self.pace.next_release(now, self.tp.alive)
            return 0.05 if nxt is None else min(max(nxt - now, 0) / SEC, 0.05)
        return 0.05

    def _deferring(self) -> bool:
        """Whether this wait sleeps to the next send instant, replies read only then.
        Their times are the kernel's arrival stamps, so latency does not grow by the wait
        (a read of two replies carries the later one's arrival: at most one instant apart,
        and rare when each connection's period is at least two instants). Not while a
        connection is being opened (its connect time is read when its event is seen)."""
        return not self.n_parked and not np.count_nonzero(self.reconnecting)

    def _enter_stage(self, now: int) -> None:
        """Next stage: open or retire connections to its count, switch to its rate."""
        has_sock = np.array([s is not None for s in self.tp.socks], dtype=bool) | self.parked
        for i in self.pace.enter_stage(now, self.tp.alive, has_sock):
            self.tp.start_connect(i)
        if self.n_parked:  # parked past the stage's count: retired, never reopened
            self.parked[self.share.stages[self.pace.stage][1]:] = False
            self.n_parked = int(np.count_nonzero(self.parked))

    def _sending_over(self, now: int) -> bool:
        if not self.rec.measuring:
            return False
        if self.times.end is not None:
            return now >= self.times.end
        return not self.pace.budget_left(self.tp.alive | self.reconnecting | self.parked)

    def _drained(self, now: int) -> bool:
        alive = self.tp.alive
        assert self.drain_until is not None
        return self.deliv.drained(now, self.drain_until, self.timeout_ns,
                                  self.pace.pending(alive) > 0, self.rec.last_rx,
                                  int(alive.sum()) / max(len(alive), 1)) \
            and not self.wire.awaiting(now, self.drain_until)  # (sio: acks on their way)

    def _stop_sending(self, now: int) -> None:
        self.sending = False
        self.rec.stop_sending(now)
        self.hi = self.seq
        self.deliv.stop(self.hi)

    def _report(self, now: int, ctrl_poll: Progress | None) -> bool:
        """Progress to the coordinator; False when it asked us to stop (result partial)."""
        res = self.res
        if res.partial or ctrl_poll is None or \
                ctrl_poll(self.rec.progress(int(self.tp.alive.sum()), now)):
            return True
        res.partial = True
        if self.sending:
            self._stop_sending(now)
        return False

    # ------------------------------------------------------------------ wrap up

    def _finish(self, cpu0: os.times_result, wait0: int | None) -> WorkerResult:
        if self.sending:
            self._stop_sending(time.monotonic_ns())
        if not self.rec.measuring:
            self.hi = self.seq
        res = self.rec.finish(cpu0, wait0)
        self.deliv.finish(res, self.hi)
        res.sent_all = self.seq - self.seq0
        res.conns_lost = int(np.count_nonzero(self.down))  # (close_all: not lost)
        self.wire.finish(res)  # the protocol's extras (ws: reconnects, deflate counts)
        if not res.replies:  # bytes that never made a frame
            self.rec.keep_unparsed(next((p for p in self.tp.pend_in if p), b""))
        self.close_all()
        return res

    def close_all(self) -> None:
        self.tp.close_all()
        self.running = False

