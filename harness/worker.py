"""One worker: a ``selectors`` loop over non-blocking sockets, working a round at a time.

Each select round: receive from every ready socket into one shared buffer (one clock read
per ``recv``), parse and account the whole round with numpy (``harness.batch``), then build
and send every connection's next messages at once. Per-connection state lives in numpy
arrays indexed by local connection number; sockets ride in ``SelectorKey.data`` as that
number. Every error goes through :meth:`Worker.fail`.

Times are ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import time
from collections.abc import Callable

import numpy as np

from harness import framing as framing_mod
from harness.batch import Inbound, Outbound, Parsed, size_bounds
from harness.framing import FrameError
from harness.histogram import SMALL_BATCH, Histogram, from_counts
from harness.ledger import BroadcastLedger, EchoLedger
from harness.plan import Plan
from harness.result import UNPARSED_KEEP, Share, Times, WorkerResult
from harness.timer import Timer
from workloads import Workload

CHUNK = 256 * 1024  # most bytes one recv may take in a round
ROUND_BUF = 8 * 1024 * 1024
SEC = 1_000_000_000
TIMER = -1  # SelectorKey.data of the timerfd
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2
BEHIND_US = 5000  # open loop: a send this late (µs) counts as behind schedule (a saturated
# client slips further and further; a scheduling hiccup on a busy machine rarely lasts 5 ms)
PHASE_GRID_NS = 500_000  # open-loop phases are multiples of this (see Worker._reset)
MAX_BURST = 4096  # open loop: most messages one connection catches up with in a round
QUIET_NS = 200_000_000  # broadcast drain: this quiet after the last delivery ends it
DRAIN_CAP_NS = 60 * 1_000_000_000  # a broadcast drain never outlasts this (or 10 timeouts)

Progress = Callable[[dict], bool]  # called about once a second; returns False to stop


def _least(a: np.ndarray) -> int:
    """Smallest of a non-empty int array. A round at low concurrency holds a few frames, and
    Python's min on a short list is ~5x cheaper than numpy's reduction (~0.8 µs)."""
    return min(a.tolist()) if len(a) <= SMALL_BATCH else int(a.min())


def _greatest(a: np.ndarray) -> int:
    return max(a.tolist()) if len(a) <= SMALL_BATCH else int(a.max())


def _error_kind(exc: OSError) -> str:
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "closed"
    return "reset"


CONNECT_KINDS = {  # errno of a failed connect -> its error kind (anything else: connect_other)
    errno.ECONNREFUSED: "connect_refused",
    errno.ETIMEDOUT: "connect_timeout",
    errno.EADDRNOTAVAIL: "connect_no_port",  # no free local port (or source address)
    errno.EADDRINUSE: "connect_no_port",
    errno.EMFILE: "connect_fd_limit",
    errno.ENFILE: "connect_fd_limit",
    errno.ECONNRESET: "connect_reset",  # reset during the handshake
    errno.ENETUNREACH: "connect_unreachable",
    errno.EHOSTUNREACH: "connect_unreachable",
}


def connect_kind(err: int) -> str:
    """The error kind of a connect that failed with ``err`` (an errno)."""
    return CONNECT_KINDS.get(err, "connect_other")


class Worker:
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
        fixed = kinds[0].size if self.out.fixed else None
        self.fixed = fixed if fr.header and not workload.ignore_unstamped else None
        self.fixed_hdr = ((fixed - fr.header).to_bytes(fr.header, "big") if self.fixed
                          else b"")
        self.timer = Timer.create()  # precise open-loop wake-ups (None: select timeouts)
        self.rbuf = bytearray(ROUND_BUF)
        self.rmv = memoryview(self.rbuf)
        self.seq = 0  # next message number (dense per worker)
        self.seq0 = 0  # self.seq when the step began

    # ------------------------------------------------------------------ step set-up

    def _reset(self, share: Share, sel: selectors.BaseSelector) -> None:
        n = len(share.node)
        self.share = share
        self.sel = sel
        self.n = n
        self.socks: list[socket.socket | None] = [None] * n
        self.pend_in: list[bytes] = [b""] * n
        self.round_len = 0  # bytes in the round buffer this round
        self.pend_out: list[bytes | None] = [None] * n
        self.alive = np.zeros(n, dtype=bool)
        self.sends = share.sends.astype(bool)
        self.gid = share.gids.astype(np.int64)
        self.credits = np.zeros(n, dtype=np.int64)
        self.outstanding = np.zeros(n, dtype=np.int64)
        self.release_at = np.zeros(n, dtype=np.int64)
        self.blocked = np.zeros(n, dtype=bool)  # output pending: wait for writability
        self.backlog = np.zeros(n, dtype=bool)  # was blocked, not yet back on schedule
        self.wake_at: int | None = None  # ns the loop meant to wake for its own schedule
        big = np.iinfo(np.int64).max // 4
        self.budget = (share.budget.astype(np.int64) if share.budget is not None
                       else np.full(n, big, dtype=np.int64))
        self.budgeted = share.budget is not None
        self.started = np.zeros(n, dtype=np.int64)  # when each connect began
        self.retiring = np.zeros(n, dtype=bool)  # a stage dropped it: drain, then close
        self.retire_at = np.zeros(n, dtype=np.int64)
        self.stage = 0
        self.running = False
        self.sched = np.zeros(n, dtype=np.int64)
        rng = np.random.default_rng(self.plan.seed * 104729 + self.index)
        rate = share.stages[0][2] if share.stages else share.rate
        self.period = int(SEC / rate) if rate > 0 else 0
        self.sched_base = 0
        top = max([self.period] + [int(SEC / r) for _, _, r in share.stages if r > 0])
        # Open loop: each connection's schedule is offset by a random phase, on a grid so
        # that due messages share rounds (at most SEC / PHASE_GRID_NS send instants a second)
        self.phase = ((rng.integers(0, top, n) // PHASE_GRID_NS) * PHASE_GRID_NS if top
                      else np.zeros(n, np.int64))
        self.last_progress = np.zeros(n, dtype=np.int64)
        self.res = WorkerResult(worker=self.index, conns=n)
        self.res.kinds = [Histogram() for _ in range(self.n_kinds)]
        self.res.kind_sent = [0] * self.n_kinds
        self.inbound = Inbound(self.framing, self.fixed, self.plan.max_frame, share.key)
        self.out.key = share.key
        self.measuring = False
        self.sending = True
        self.lo = 0
        self.deliveries = 0
        self.last_rx = 0
        if self.workload.delivery == "broadcast":
            self.ledger: EchoLedger | BroadcastLedger = BroadcastLedger(
                share.node.astype(np.int64), len(self.addrs))
        else:
            self.ledger = EchoLedger()

    def fail(self, i: int, kind: str) -> None:
        """The one error path: count it, close the connection, forget its state."""
        self._error(kind, 1, time.monotonic_ns())
        self._close(i)

    # ------------------------------------------------------------------ connect phase

    def connect(self, share: Share, sel: selectors.BaseSelector, deadline_ns: int,
                stop: Callable[[], bool] | None = None) -> None:
        """Open this worker's connections (rate-limited if asked), bounded by a deadline;
        ``stop()`` true (polled each pass) abandons the attempt, result marked partial."""
        self._reset(share, sel)
        if self.timer is not None and self.timer.fileno() not in sel.get_map():
            self.timer.clear()
            sel.register(self.timer, selectors.EVENT_READ, TIMER)
        plan = self.plan
        rate = plan.connect_rate / max(plan.workers, 1) if plan.connect_rate > 0 else 0.0
        timeout = int(plan.connect_timeout_s * SEC)
        want = share.stages[0][1] if share.stages else self.n
        started = self.started
        launched = done = 0
        t0 = time.monotonic_ns()
        while done < want:
            now = time.monotonic_ns()
            allowed = want if rate <= 0 else min(want, int((now - t0) / SEC * rate) + 1)
            while launched < allowed:
                started[launched] = time.monotonic_ns()
                if not self._start_connect(launched):
                    done += 1
                launched += 1
            for key, _ev in sel.select(0.005 if launched < want else 0.05):
                if key.data != TIMER:
                    done += self._finish_connect(key.data, started[key.data])
            if stop is not None and stop():
                self.res.partial = True
                self.close_all()
                break
            now = time.monotonic_ns()
            pending = [i for i in range(launched) if self.socks[i] is not None
                       and not self.alive[i] and now - started[i] > timeout]
            for i in pending:
                self.fail(i, "connect_timeout")
                done += 1
            if now > deadline_ns:
                for i in range(want):
                    if i >= launched or (self.socks[i] is not None and not self.alive[i]):
                        self.fail(i, "connect_timeout")
                break
        self.res.connected = int(self.alive.sum())
        self.res.node_connected = np.bincount(self.share.node[self.alive],
                                              minlength=len(self.addrs))

    def _start_connect(self, i: int) -> bool:
        family, addr = self.addrs[int(self.share.node[i])]
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of file descriptors (EMFILE, ENFILE), or memory
            self.fail(i, connect_kind(exc.errno or 0))
            return False
        s.setblocking(False)
        self.socks[i] = s
        sources = self.plan.source_addrs
        if sources and family == socket.AF_INET:
            # a source address per connection, the port still picked at connect time
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            try:
                s.bind((sources[int(self.share.gids[i]) % len(sources)], 0))
            except OSError as exc:
                self.fail(i, connect_kind(exc.errno or 0))
                return False
        rc = s.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            self.fail(i, connect_kind(rc))
            return False
        self.sel.register(s, selectors.EVENT_WRITE, i)
        return True

    def _finish_connect(self, i: int, started: int) -> int:
        s = self.socks[i]
        if s is None or self.alive[i]:
            return 0
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.fail(i, connect_kind(err))
            return 1
        self.res.connect.record_one(time.monotonic_ns() - started)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alive[i] = True
        self.sel.modify(s, selectors.EVENT_READ, i)
        if self.running:  # joined mid-run (a stage added it)
            now = time.monotonic_ns()
            self.res.connected += 1
            self.last_progress[i] = now
            self.release_at[i] = now
            if self.sends[i]:
                self.credits[i] = self.plan.pacing.inflight
            self._join_schedule(i, now)
        hello = self.workload.hello(int(self.gid[i]))
        if hello:
            self._send(i, memoryview(b"".join(self.framing.encode(h) for h in hello)))
        return 1

    # ------------------------------------------------------------------ the loop

    def run(self, times: Times, ctrl_poll: Progress | None = None) -> WorkerResult:
        """Warm-up, measure, drain; returns the step's result (``partial`` if stopped)."""
        plan = self.plan
        self.times = times
        self.credits[:] = np.where(self.sends & self.alive, plan.pacing.inflight, 0)
        self.release_at[:] = times.begin
        self.last_progress[:] = times.begin
        self.sched_base = times.begin
        self.running = True
        stage_at = self._stage_times(times)
        timeout_ns = self.timeout_ns = int(plan.timeout_s * SEC)
        cpu0 = os.times()
        self.seq0 = self.seq
        self._series_init()
        next_tick = times.begin + SEC // 10
        next_report = times.begin + SEC
        drain_until = None
        while True:
            now = time.monotonic_ns()
            if not self.measuring and now >= times.measure:
                self._start_measure()
            while stage_at and now >= stage_at[0]:
                stage_at.pop(0)
                self._enter_stage(now)
            if self.sending and self._sending_over(now):
                self._stop_sending(now)
                drain_until = now + timeout_ns
            if drain_until is not None and self._drained(now, drain_until):
                self._end_drain(now)
                break
            self._io_round(self._wait_s(now))
            now = time.monotonic_ns()
            if self.sending and now >= times.begin and (times.end is None or now < times.end):
                self._send_round(now)
            if now >= next_tick:
                next_tick = now + SEC // 10
                self._check_stalls(now, timeout_ns)
                if self.share.stages:
                    self._retire(now, timeout_ns)
                if now >= next_report:
                    next_report += SEC
                    if not self._report(now, ctrl_poll) and drain_until is None:
                        # stopped: give the messages in flight a short drain, so they are
                        # not counted lost merely because the run was cut short
                        drain_until = now + min(timeout_ns, SEC)
        return self._finish(cpu0)

    # ------------------------------------------------------------------ stages

    def _stage_times(self, times: Times) -> list[int]:
        return [times.measure + int(off * SEC) for off, _, _ in self.share.stages[1:]]

    def _enter_stage(self, now: int) -> None:
        """Next stage: connect or retire connections to its count, switch to its rate."""
        self.stage += 1
        _, active, rate = self.share.stages[self.stage]
        period = int(SEC / rate) if rate > 0 else 0
        if period != self.period:
            if not period:  # back to the closed loop: each sender may fill its window again
                live = self.alive & self.sends
                self.credits[live] = np.maximum(self.plan.pacing.inflight -
                                                self.outstanding[live], 0)
            self.period = period
            self.sched_base = now  # a new schedule from here, same per-connection phases
            self.sched[:] = 0
            if period:
                self.phase %= period
        for i in range(self.n):
            if i < active and self.socks[i] is None and not self.retiring[i]:
                self.started[i] = now
                self._start_connect(i)
            elif i < active and self.retiring[i]:
                self.retiring[i] = False  # wanted again before it closed
                self.sends[i] = bool(self.share.sends[i])
                self._join_schedule(i, now)
            elif i >= active and self.alive[i] and not self.retiring[i]:
                self.retiring[i] = True
                self.retire_at[i] = now
                self.sends[i] = False
                self.credits[i] = 0

    def _join_schedule(self, i: int, now: int) -> None:
        """A connection joining mid-run (open loop) owes nothing from before it joined: its
        next message is the first one due from now on."""
        if self.period:
            behind = now - self.sched_base - int(self.phase[i])
            self.sched[i] = max(0, -(-behind // self.period))
        if self.sends[i] and not self.period:
            self.credits[i] = max(self.plan.pacing.inflight - int(self.outstanding[i]), 0)

    def _retire(self, now: int, timeout_ns: int) -> None:
        """Close retired connections once their replies are in (or the reply timeout passed),
        and fail connects that took longer than the connect timeout."""
        done = self.retiring & ((self.outstanding == 0) | (now - self.retire_at > timeout_ns))
        for i in np.flatnonzero(done).tolist():
            self._close(i)
            self.retiring[i] = False
        limit = int(self.plan.connect_timeout_s * SEC)
        for i in np.flatnonzero(~self.alive & (self.started > 0)).tolist():
            if self.socks[i] is not None and now - self.started[i] > limit:
                self.fail(i, "connect_timeout")

    def _close(self, i: int) -> None:
        """Close a connection and forget its state; its outstanding messages stay in the
        ledger (unanswered, they count as lost)."""
        s = self.socks[i]
        if s is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s)
            s.close()
            self.socks[i] = None
        self.alive[i] = False
        self.outstanding[i] = 0
        self.credits[i] = 0
        self.pend_in[i] = b""
        self.pend_out[i] = None
        self.blocked[i] = False

    def _io_round(self, wait: float) -> None:
        events = self.sel.select(wait)
        if not self.measuring and time.monotonic_ns() >= self.times.measure:
            self._start_measure()
        ready = [k.data for k, ev in events if ev & selectors.EVENT_READ]
        if self.timer is not None and TIMER in ready:
            self.timer.clear()
            ready.remove(TIMER)
        for k, ev in events:
            if ev & selectors.EVENT_WRITE:
                self._flush(k.data)
        if ready:
            self._read_round(ready)

    def _end_drain(self, now: int) -> None:
        left = int(self.outstanding[self.alive].sum())
        if left:  # never answered within --timeout of the end of sending
            self._error("timeout", left, now)
            self.outstanding[:] = 0

    def _report(self, now: int, ctrl_poll: Progress | None) -> bool:
        """Progress to the coordinator; False when it asked us to stop (result partial)."""
        if self.res.partial or ctrl_poll is None or ctrl_poll(self._progress()):
            return True
        self.res.partial = True
        if self.sending:
            self._stop_sending(now)
        return False

    def _wait_s(self, now: int) -> float:
        if not self.sending or now < self.times.begin:
            return 0.01
        if self.period:  # wake exactly at the next scheduled send
            live = self.alive & self.sends
            if not live.any():
                return 0.01
            nxt = int((self.phase[live] + self.sched[live] * self.period).min()) + self.sched_base
            own = live & ~self.backlog  # the client's own schedule, not a server's backlog
            self.wake_at = (int((self.phase[own] + self.sched[own] * self.period).min()) +
                            self.sched_base) if own.any() else None
            if self.timer is not None:
                self.timer.arm(nxt)
                return 0.05
            return min(max(nxt - now, 0) / SEC, 0.01)
        if self.plan.pacing.think_s > 0:
            return 0.001
        return 0.05

    def _sending_over(self, now: int) -> bool:
        if not self.measuring:
            return False
        if self.times.end is not None:
            return now >= self.times.end
        return not (self.alive & self.sends & (self.budget > 0)).any()

    def _drained(self, now: int, drain_until: int) -> bool:
        """Echo: every reply in, or --timeout after the last send. Broadcast: other workers
        may still be sending into the room, so wait until every delivery is in, or until
        nothing has arrived for 2 x --timeout + 200 ms (bounded by DRAIN_CAP_NS)."""
        if isinstance(self.ledger, EchoLedger):
            return now >= drain_until or not (self.outstanding[self.alive] > 0).any()
        stopped = drain_until - self.timeout_ns
        quiet = now - max(self.last_rx, stopped)
        # a sender elsewhere may be stalled for one reply timeout (+ a 100 ms tick) before
        # it carries on: only a longer silence means the room is done
        if quiet >= 2 * self.timeout_ns + QUIET_NS or \
                now - stopped >= max(DRAIN_CAP_NS, 10 * self.timeout_ns):
            return True
        if (self.outstanding[self.alive] > 0).any():
            return False
        want = self.share.expect_deliveries
        if want is not None:
            return self.deliveries >= want * (int(self.alive.sum()) / max(self.n, 1))
        return quiet >= min(QUIET_NS, self.timeout_ns)

    def _start_measure(self) -> None:
        self.measuring = True
        self.lo = self.seq
        self.res.window_start = self.times.measure
        self.ledger.start(self.seq if isinstance(self.ledger, EchoLedger) else self.times.measure)

    def _stop_sending(self, now: int) -> None:
        self.sending = False
        end = self.times.end  # cut short (stopped): the window ends now, not as planned
        self.res.window_end = now if end is None else min(now, end)
        self.hi = self.seq

    # ------------------------------------------------------------------ receive

    def _read_round(self, ready: list[int]) -> None:  # noqa: C901 (the hot loop, kept flat)
        """recv from each ready socket into the shared buffer, keeping whole frames only.

        Per socket this is the hot path of the whole tool: the common case (whole frames,
        nothing pending) is inlined rather than split into calls (measured: ~4% of the
        ceiling)."""
        buf, mv, socks, pend = self.rbuf, self.rmv, self.socks, self.pend_in
        fixed = self.fixed
        walk: list[int] | None = None if (fixed or self.framing.header == 0) else []
        seg_conn: list[int] = []
        seg_end: list[int] = []
        seg_t: list[int] = []
        broken: list[int] = []
        off = 0
        cap = len(buf)
        mono = time.monotonic_ns
        for i in ready:
            s = socks[i]
            if s is None:
                continue
            start = off
            p = pend[i]
            if off + len(p) + CHUNK > cap:
                if off:
                    break  # the rest stay ready for the next round
                buf, mv = self._grow_round_buffer(len(p) + CHUNK)  # one huge partial frame
                cap = len(buf)
            if p:
                off += len(p)
                buf[start:off] = p
            try:
                n = s.recv_into(mv[off:off + CHUNK])
            except BlockingIOError:
                off = start
                continue
            except OSError as exc:
                self.fail(i, _error_kind(exc))
                off = start
                continue
            t = mono()
            if n == 0:  # EOF: after whole frames a close; after a partial frame, junk
                self.fail(i, "protocol" if pend[i] else "closed")
                off = start
                continue
            end = off + n
            if fixed and (end - start) % fixed == 0:
                cut = end  # the common case: whole frames only, nothing to keep
            else:
                cut, end = self._cut(i, start, end, walk, broken)
            if cut < end:
                pend[i] = bytes(mv[cut:end])
            elif p:
                pend[i] = b""
            if cut > start:
                seg_conn.append(i)
                seg_end.append(cut)
                seg_t.append(t)
            off = cut
        if seg_conn:
            self.round_len = seg_end[-1]
            self._account(self.inbound.parse(buf, seg_conn, seg_end, seg_t, walk), seg_t[-1])
        for i in broken:
            if socks[i] is not None:  # one broken stream, one count (its frames may have
                self.fail(i, "protocol")  # already failed it in _account)

    def _grow_round_buffer(self, need: int) -> tuple[bytearray, memoryview]:
        self.rbuf = bytearray(max(need, 2 * len(self.rbuf)))
        self.rmv = memoryview(self.rbuf)
        return self.rbuf, self.rmv

    def _cut(self, i: int, start: int, end: int, walk: list[int] | None,
             broken: list[int]) -> tuple[int, int]:
        """Where the whole frames of ``buf[start:end]`` stop. A stream that breaks (a prefix
        that is not ours, a frame over --max-frame) keeps the whole frames before the break
        and joins ``broken``: those frames count, then the connection closes (one protocol
        error; there is no way to resync)."""
        buf, fixed = self.rbuf, self.fixed
        if fixed:
            cut = start + (end - start) // fixed * fixed
            hdr = self.framing.header
            if end - cut >= hdr and buf[cut:cut + hdr] != self.fixed_hdr:
                self._keep_unparsed(buf[cut:end])
                broken.append(i)
                return cut, cut
            return cut, end
        if walk is None:  # newline
            cut = buf.rfind(b"\n", start, end) + 1 or start
            if end - cut > self.plan.max_frame:
                self._keep_unparsed(buf[cut:end])
                broken.append(i)
                return cut, cut
            return cut, end
        try:
            starts, cut = self.framing.cut(buf, start, end, self.plan.max_frame)
        except FrameError as exc:
            self._keep_unparsed(buf[exc.pos:end])
            walk.extend(exc.starts)
            broken.append(i)
            return exc.pos, exc.pos
        walk.extend(starts)
        return cut, end

    def _account(self, p: Parsed, t_last: int) -> None:
        """Everything one round's frames change: counters, histograms, ledger, credits."""
        res = self.res
        if p.bad_conns:
            self._keep_unparsed(self.rbuf[:self.round_len])
        for c in p.bad_conns:
            if self.alive[c]:
                self.fail(c, "protocol")
        self.last_rx = t_last
        st, conn, t, flen = p.st, p.conn, p.t, p.flen
        echo = self.ledger.__class__ is EchoLedger
        valid = p.ok
        if echo:  # a reply must come back to the connection (and worker) that sent it
            valid = valid & (st["worker"] == self.index) & (st["conn"] == self.gid[conn])
        if np.count_nonzero(valid) < len(valid):
            bad = self._count_invalid(p.ok, valid, t_last)
            if echo:  # a mangled reply arrived: it frees its in-flight slot (no timeout too)
                self._credit(conn[bad], t_last)
            st, conn, t, flen = st[valid], conn[valid], t[valid], flen[valid]
        res.replies += len(t)
        if echo:
            self.ledger.record(st["seq"])
            own = conn
        else:
            self.ledger.record(conn, st, t)
            self.deliveries += int(np.count_nonzero(st["t"] >= self.times.measure))
            own = conn[st["conn"] == self.gid[conn]]
        self._credit(own, t_last)
        if self.measuring and len(t):
            got, nbytes = self._in_window(t, flen)
            if got:
                res.received += got
                res.bytes_received += nbytes
                self._series_add("received", got, t_last)
            self._record_latency(st, t)

    def _count_invalid(self, ok: np.ndarray, valid: np.ndarray, now: int) -> np.ndarray:
        """Protocol errors: frames without a good stamp (unless the workload expects some),
        and good stamps another connection or worker sent. Returns the mask of the frames
        counted (each one error, once)."""
        bad = ~valid if not self.workload.ignore_unstamped else ok & ~valid
        n = int(np.count_nonzero(bad))
        if n:
            if not self.workload.ignore_unstamped and np.count_nonzero(ok) < len(ok):
                self._keep_unparsed(self.rbuf[:self.round_len])
            self._error("protocol", n, now)
        return bad

    def _in_window(self, t: np.ndarray, flen: np.ndarray) -> tuple[int, int]:
        """Frames (and their bytes) received inside the measure window."""
        begin, end = self.times.measure, self.times.end
        if t[0] >= begin and (end is None or t[-1] < end):  # t never decreases in a round
            return len(t), (len(t) * self.fixed if self.fixed else int(flen.sum()))
        inwin = t >= begin
        if end is not None:
            inwin &= t < end
        return int(np.count_nonzero(inwin)), int(flen[inwin].sum())

    def _keep_unparsed(self, data: bytes | bytearray | memoryview) -> None:
        """Keep the first bytes of the step that did not parse, for a diagnosis when no valid
        reply came (a whole round is kept from its start: it may begin with a good frame)."""
        if not self.res.unparsed:
            self.res.unparsed = bytes(data[:UNPARSED_KEEP])

    def _error(self, kind: str, count: int, now: int) -> None:
        self.res.errors[kind] += count
        self._series_add("errors", count, now)

    def _credit(self, own: np.ndarray, now: int) -> None:
        if not len(own):
            return
        grant = np.minimum(np.bincount(own, minlength=self.n), self.outstanding)
        self.outstanding -= grant
        if not self.period:  # the open loop sends on its schedule, not on replies
            self.credits += grant
        self.last_progress[own] = now  # repeats in own set the same value
        if self.plan.pacing.think_s > 0:
            self.release_at[own] = now + int(self.plan.pacing.think_s * SEC)

    def _record_latency(self, st: np.ndarray, t: np.ndarray) -> None:
        tint = st["t"].astype(np.int64)
        if _least(tint) < self.times.measure:  # some were sent before the window opened
            win = tint >= self.times.measure
            st, t, tint = st[win], t[win], tint[win]
            if not len(t):
                return
        lat = t - tint
        self.res.latency.record(lat)
        if _greatest(lat) > self.timeout_ns:
            self.res.late += int((lat > self.timeout_ns).sum())
        if self.period:
            self.res.service.record(lat - st["delay"].astype(np.int64) * 1000)
        if self.n_kinds > 1:
            for k in range(self.n_kinds):
                sel = st["kind"] == k
                if sel.any():
                    self.res.kinds[k].record(lat[sel])

    # ------------------------------------------------------------------ send

    def _send_round(self, now: int) -> None:
        if not self.measuring and now >= self.times.measure:
            # a message is in the window when its stamp time is: every receiver (in any
            # worker) decides by the stamp, so the sender must count by the same clock read
            self._start_measure()
        picked = self._pick_open(now) if self.period else self._pick_closed(now)
        if picked is None:
            return
        idx, counts = picked
        cum = counts.cumsum()
        total = int(cum[-1])
        gid = self.gid[idx].repeat(counts)
        if self.period:
            k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            tint = (self.sched_base + np.repeat(self.phase[idx] + self.sched[idx] * self.period,
                                                 counts) + k * self.period)
            delay = np.maximum(now - tint, 0) // 1000
            self.sched[idx] += counts
            if self.measuring:
                self._count_behind(idx, counts, delay, now)
        else:
            tint, delay = now, 0
            self.credits[idx] -= counts
        self.last_progress[idx[self.outstanding[idx] == 0]] = now  # idle until now
        self.outstanding[idx] += counts
        if self.measuring and self.budgeted:
            self.budget[idx] -= counts
        data, ends, kinds = self.out.build(gid, self.seq, tint, delay)
        self.seq += total
        if self.period and self.measuring and self.ledger.__class__ is BroadcastLedger:
            self._account_sent_stamped(tint, ends, kinds, now)
        else:
            self._account_sent(total, int(ends[-1]), kinds, now)
        bounds = ends[cum - 1].tolist()
        socks, a = self.socks, 0
        for i, b in zip(idx.tolist(), bounds, strict=True):
            try:  # inline: this is one send per connection per round
                n = socks[i].send(data[a:b])
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self.fail(i, _error_kind(exc))
                a = b
                continue
            if n < b - a:
                self._queue(i, data[a + n:b])
            a = b

    def _count_behind(self, idx: np.ndarray, counts: np.ndarray, delay: np.ndarray,
                      now: int) -> None:
        """Sends over BEHIND_US behind schedule because the client was slow: the loop woke
        that late for its own schedule. A backlog the server built by keeping a socket full
        (``_queue``) is late too, but that lateness is the server's."""
        late = delay > BEHIND_US
        if not late.any():
            self.backlog[idx] = False
            return
        last = np.cumsum(counts) - 1
        loop_late = self.wake_at is not None and now - self.wake_at > BEHIND_US * 1000
        if loop_late:
            held = np.repeat(self.backlog[idx], counts)
            self.res.behind += int((late & ~held).sum())
        self.backlog[idx[~late[last]]] = False  # caught up with the schedule

    def _pick_closed(self, now: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Connections with credits (only senders that are alive hold any), and how many."""
        idx = self.credits.nonzero()[0]
        if not len(idx):
            return None
        if np.count_nonzero(self.blocked):  # cheaper than .any() (~0.2 against ~0.8 µs)
            idx = idx[~self.blocked[idx]]
        if self.stage:  # a stage may have retired senders: replies still grant them credits
            idx = idx[self.sends[idx]]
        if self.plan.pacing.think_s > 0:
            idx = idx[self.release_at[idx] <= now]
        counts = self.credits[idx]
        if self.measuring and self.budgeted:
            counts = np.minimum(counts, self.budget[idx])
            idx, counts = idx[counts > 0], counts[counts > 0]
        return (idx, counts) if len(idx) else None

    def _pick_open(self, now: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Connections whose schedule has messages due, and how many (at most MAX_BURST)."""
        due = (now - self.sched_base - self.phase) // self.period + 1 - self.sched
        if self.measuring and self.budgeted:
            due = np.minimum(due, self.budget)
        want = np.clip(due, 0, MAX_BURST)
        want[~(self.alive & self.sends & ~self.blocked)] = 0
        idx = np.flatnonzero(want)
        return (idx, want[idx]) if len(idx) else None

    def _account_sent(self, total: int, nbytes: int, kinds: np.ndarray, now: int) -> None:
        if not self.measuring:
            return
        res = self.res
        if not res.first_send:
            res.first_send = now
        res.last_send = now
        res.sent += total
        res.bytes_sent += nbytes
        if self.n_kinds > 1:
            for k, c in enumerate(np.bincount(kinds, minlength=self.n_kinds).tolist()):
                res.kind_sent[k] += c
        else:
            res.kind_sent[0] += total
        self._series_add("sent", total, now)

    def _account_sent_stamped(self, tint: np.ndarray, ends: np.ndarray, kinds: np.ndarray,
                              now: int) -> None:
        """Broadcast, open loop: a message due before the window opened but sent late is
        warm-up traffic (receivers judge by the stamp): count only window stamps as sent."""
        win = tint >= self.times.measure
        if np.count_nonzero(win) == len(win):
            self._account_sent(len(win), int(ends[-1]), kinds, now)
        elif win.any():
            sizes = np.diff(ends, prepend=0)
            self._account_sent(int(np.count_nonzero(win)), int(sizes[win].sum()), kinds[win],
                               now)

    def _send(self, i: int, data: memoryview) -> None:
        s = self.socks[i]
        try:
            n = s.send(data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self.fail(i, _error_kind(exc))
            return
        if n < len(data):
            self._queue(i, data[n:])

    def _queue(self, i: int, rest: memoryview) -> None:
        """Keep unsent bytes (copied: the send buffer is reused) and wait for writability."""
        self.pend_out[i] = bytes(rest)
        self.blocked[i] = True
        self.backlog[i] = True
        self.sel.modify(self.socks[i], selectors.EVENT_READ | selectors.EVENT_WRITE, i)

    def _flush(self, i: int) -> None:
        if not self.alive[i]:
            if self.socks[i] is not None:  # a connect begun mid-run has completed
                self._finish_connect(i, int(self.started[i]))
            return
        s, data = self.socks[i], self.pend_out[i]
        if s is None or data is None:
            return
        try:
            n = s.send(data)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(i, _error_kind(exc))
            return
        if n < len(data):
            self.pend_out[i] = data[n:]
            return
        self.pend_out[i] = None
        self.blocked[i] = False
        self.sel.modify(s, selectors.EVENT_READ, i)

    # ------------------------------------------------------------------ timeouts, series

    def _check_stalls(self, now: int, timeout_ns: int) -> None:
        """A connection that waited ``--timeout`` with no reply: its outstanding messages
        count as timed out, and it carries on (closed loop gets its credits back)."""
        stalled = self.alive & (self.outstanding > 0) & (now - self.last_progress > timeout_ns)
        if stalled.any():
            self._error("timeout", int(self.outstanding[stalled].sum()), now)
            if not self.period:
                self.credits[stalled] += self.outstanding[stalled]
            self.outstanding[stalled] = 0
            self.last_progress[stalled] = now

    def _series_init(self) -> None:
        self.series = {"sent": [], "received": [], "errors": []}
        self.snap = self.res.latency.counts.copy()  # latency counts when this second began

    def _series_add(self, name: str, count: int, now: int) -> None:
        if not self.measuring:
            return
        sec = (now - self.times.measure) // SEC
        self._roll(sec)
        col = self.series[name]
        col[sec] += count

    def _roll(self, sec: int) -> None:
        while len(self.series["sent"]) <= sec:
            for col in self.series.values():
                col.append(0)
            if len(self.series["sent"]) > 1:
                self.res.sec_hists.append(self._second_hist())
                self.snap = self.res.latency.counts.copy()

    def _second_hist(self) -> Histogram:
        """This second's latencies: the main histogram less its snapshot (no second record)."""
        return from_counts(self.res.latency.counts - self.snap)

    def _progress(self) -> dict:
        return {"worker": self.index, "open": int(self.alive.sum()), "sent": self.res.sent,
                "received": self.res.received, "errors": sum(self.res.errors.values()),
                "p99": self._second_hist().percentile(99) if self.measuring else None}

    # ------------------------------------------------------------------ wrap up

    def _finish(self, cpu0: os.times_result) -> WorkerResult:
        res = self.res
        cpu1 = os.times()
        res.cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        res.wall_s = max((time.monotonic_ns() - self.times.begin) / SEC, 1e-9)
        if self.sending:
            self._stop_sending(time.monotonic_ns())
        if not self.measuring:
            self.lo = self.hi = self.seq
        if isinstance(self.ledger, EchoLedger):
            _, res.lost, res.duplicates = self.ledger.finish(self.hi)
        else:
            res.fanout = self.ledger.finish()
        if self.series["sent"]:
            res.sec_hists.append(self._second_hist())
        res.series = {k: np.asarray(v, dtype=np.int64) for k, v in self.series.items()}
        res.last_recv = self.last_rx
        res.sent_all = self.seq - self.seq0
        for p in self.pend_in if not res.replies else ():  # bytes that never made a frame
            if p:
                self._keep_unparsed(p)
                break
        self.close_all()
        return res

    def close_all(self) -> None:
        for i, s in enumerate(self.socks):
            if s is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(s)
                s.close()
                self.socks[i] = None
        self.alive[:] = False
        self.running = False
