"""Recording one step: the measure window, histograms, counters, the per-second series and
progress. Pure numpy over whole rounds, no sockets.

Times are ns of ``time.monotonic_ns()``; latencies ns; sizes bytes.
"""

from __future__ import annotations

import os
import time

import numpy as np

from harness.core.histogram import SMALL_BATCH, Histogram, from_counts
from harness.core.result import UNPARSED_KEEP, Times, WorkerResult
from harness.core.units import SEC
from harness.wire import hot

HTTP_SCAN = 64 * 1024  # bytes of a broken round searched for an HTTP status line
PROGRESS_SECONDS = 2  # closed seconds each progress row carries (harness.report.live)


def _least(a: np.ndarray) -> int:
    """Smallest of a non-empty int array. A round at low concurrency holds a few frames, and
    Python's min on a short list is cheaper than numpy's reduction."""
    return min(a.tolist()) if len(a) <= SMALL_BATCH else int(a.min())


class Recorder:
    """One step's figures. Everything counted before the measure window opens is dropped,
    except errors and connect times (they count whenever they happen)."""

    def __init__(self, worker: int, conns: int, n_kinds: int, fixed: int | None) -> None:
        self.res = WorkerResult(worker=worker, conns=conns)
        self.res.kinds = [Histogram() for _ in range(n_kinds)]
        self.res.kind_sent = [0] * n_kinds
        self.n_kinds = n_kinds
        self.fixed = fixed  # bytes of every frame when all have one size, else None
        self.measuring = False
        self.times = Times(0, 1 << 62, None)
        self.timeout_ns = 0
        self.last_rx = 0
        self.monotone = True  # receive times never decrease within a round (False: kernel
        # arrival stamps, in read order)
        self.series: dict[str, list[int]] = {"sent": [], "received": [], "errors": []}
        self.cur_lo, self.cur_hi = 1, 0  # ns bounds of the series' last second (none yet)
        self.snap = self.res.latency.counts.copy()  # latency counts when this second began

    def begin(self, times: Times, timeout_ns: int) -> None:
        """The step starts sending: windows are known from here."""
        self.times = times
        self.timeout_ns = timeout_ns
        self.snap = self.res.latency.counts.copy()

    def start_measure(self) -> None:
        self.measuring = True
        self.res.window_start = self.times.measure

    def stop_sending(self, now: int) -> None:
        end = self.times.end  # cut short (stopped): the window ends now, not as planned
        self.res.window_end = now if end is None else min(now, end)

    def keep_unparsed(self, data: bytes | bytearray | memoryview) -> None:
        """Keep the first bytes of the step that did not parse, for a diagnosis when no
        valid reply came."""
        if self.res.unparsed[:7] == b"HTTP/1.":
            return
        # an HTTP status line outranks other bytes kept first (a fixed-size cut breaks a
        # round's last frame before its first frames are parsed; a round holds other
        # connections' frames before it): it names the target
        head = bytes(data[:HTTP_SCAN])
        at = head.find(b"HTTP/1.")
        if at >= 0:
            self.res.unparsed = head[at:at + UNPARSED_KEEP]
        elif not self.res.unparsed:
            self.res.unparsed = head[:UNPARSED_KEEP]

    # ------------------------------------------------------------------ counters

    def error(self, kind: str, count: int, now: int) -> None:
        self.res.errors[kind] = self.res.errors.get(kind, 0) + count
        self._series_add("errors", count, now)

    def statuses(self, codes: np.ndarray) -> None:
        """HTTP responses of the measure window, counted by status code."""
        status = self.res.status
        if not len(codes):
            return
        lo = int(codes.min())
        if lo == int(codes.max()):  # one code (the usual round): no np.unique
            status[lo] = status.get(lo, 0) + len(codes)
            return
        for code, count in zip(*np.unique(codes, return_counts=True), strict=True):
            status[int(code)] = status.get(int(code), 0) + int(count)

    def connected(self, elapsed_ns: int) -> None:
        self.res.connect.record_one(elapsed_ns)

    def handshaken(self, elapsed_ns: int) -> None:
        """A TLS handshake done, ``elapsed_ns`` after its TCP connect (counted whenever)."""
        self.res.handshake.record_one(elapsed_ns)

    def tls_failed(self, kind: str, reason: str) -> None:
        """Keep the first reason of each TLS error kind, for the diagnosis."""
        self.res.tls_reasons.setdefault(kind, reason)

    def received(self, st: np.ndarray, t: np.ndarray, flen: np.ndarray, t_last: int,
                 open_loop: bool) -> None:
        """A round's valid replies (stamps, receive times, frame sizes), in the window or not;
        ``open_loop``: keep service time (from the actual send) beside latency."""
        got, nbytes = self._in_window(t, flen)
        if got:
            self.res.received += got
            self.res.bytes_received += nbytes
            self._series_add("received", got, t_last)
        self._record_latency(st, t, open_loop)

    def received_few(self, t: list[int], tint: list[int], delay: list[int], t_last: int,
                     open_loop: bool, starts: list[int] | None = None) -> None:
        """As :meth:`received`, for a small round of frames of one kind, without arrays
        (the latencies: harness.wire.hot.lat_few, in C when built): receive times, intended
        send times (ns), delays (µs); ``t_last`` is the latest of ``t``. Frames of one size,
        or (``starts``) each from its start to the next (the last: to the round's end)."""
        begin, end = self.times.measure, self.times.end
        first, last = (t[0], t_last) if self.monotone else (min(t), t_last)
        nbytes = None
        if first >= begin and (end is None or last < end):
            got = len(t)
            if starts is not None:
                nbytes = starts[-1] - starts[0]
        else:
            inwin = [k for k, x in enumerate(t) if x >= begin and (end is None or x < end)]
            got = len(inwin)
            if starts is not None:
                nbytes = sum(starts[k + 1] - starts[k] for k in inwin)
        lats = hot.lat_few(t, tint, delay, open_loop, begin)
        if lats is None:  # some were sent before the window opened: the window's ones
            keep = [k for k, b in enumerate(tint) if b >= begin]
            lats = hot.lat_few([t[k] for k in keep], [tint[k] for k in keep],
                               [delay[k] for k in keep], open_loop, begin) if keep else None
        self.counted(got, t_last, lats, nbytes)

    def counted(self, got: int, t_last: int, lats: tuple | None, nbytes: int | None = None
                ) -> None:
        """A small round's replies in the window (``got``, the latest at ``t_last``; their
        bytes, when not of the fixed size) and its latencies (harness.wire.hot.lat_few's, or
        None): :meth:`received_few`'s booking, and a fused round's (harness.wire.fused)."""
        res = self.res
        if got:
            res.received += got
            res.bytes_received += got * (self.fixed or 0) if nbytes is None else nbytes
            self._series_add("received", got, t_last)
        if lats is None:
            return
        lat, lo, hi, service, s_lo, s_hi = lats
        res.latency.record_list(lat, lo, hi)
        if hi > self.timeout_ns:
            res.late += sum(1 for x in lat if x > self.timeout_ns)
        if service is not None:
            res.service.record_list(service, s_lo, s_hi)

    def bucketed(self, n: int, total: int, lo: int, hi: int, late: int) -> None:
        """Latencies a fused loop bucketed straight into the histogram's counts
        (harness.wire.fused.Binned): their count, sum, least and greatest, and how many
        were late."""
        self.res.latency.add_bucketed(n, total, lo, hi)
        self.res.late += late

    def _in_window(self, t: np.ndarray, flen: np.ndarray) -> tuple[int, int]:
        """Frames (and their bytes) received inside the measure window."""
        begin, end = self.times.measure, self.times.end
        first, last = (t[0], t[-1]) if self.monotone else (t.min(), t.max())
        if first >= begin and (end is None or last < end):
            return len(t), (len(t) * self.fixed if self.fixed else int(flen.sum()))
        inwin = t >= begin
        if end is not None:
            inwin &= t < end
        return int(np.count_nonzero(inwin)), int(flen[inwin].sum())

    def _record_latency(self, st: np.ndarray, t: np.ndarray, open_loop: bool) -> None:
        tint = st["t"].astype(np.int64)
        if _least(tint) < self.times.measure:  # some were sent before the window opened
            win = tint >= self.times.measure
            st, t, tint = st[win], t[win], tint[win]
            if not len(t):
                return
        lat = t - tint
        if not open_loop:  # closed loop: from the send (its lag in the round: the delay)
            delay = st["delay"]
            if delay.any():
                lat -= delay.astype(np.int64) * 1000
        latency = self.res.latency
        latency.record(lat)
        if latency.max is not None and latency.max > self.timeout_ns:  # (else none is late)
            self.res.late += int((lat > self.timeout_ns).sum())
        if open_loop:
            self.res.service.record(lat - st["delay"].astype(np.int64) * 1000)
        if self.n_kinds > 1:
            for k in range(self.n_kinds):
                sel = st["kind"] == k
                if sel.any():
                    self.res.kinds[k].record(lat[sel])

    def sent(self, total: int, nbytes: int, kinds: np.ndarray, now: int, first: int = 0
             ) -> None:
        """Messages sent at ``now`` (several rounds': the first at ``first``)."""
        if not self.measuring:
            return
        res = self.res
        if not res.first_send:
            res.first_send = first or now
        res.last_send = now
        res.sent += total
        res.bytes_sent += nbytes
        if self.n_kinds > 1:
            for k, c in enumerate(np.bincount(kinds, minlength=self.n_kinds).tolist()):
                res.kind_sent[k] += c
        else:
            res.kind_sent[0] += total
        self._series_add("sent", total, now)

    def sent_by_stamp(self, tint: np.ndarray, ends: np.ndarray, kinds: np.ndarray,
                      now: int) -> None:
        """Count as sent only messages whose stamp time is in the window: a message due before
        it opened but sent late is warm-up traffic (receivers judge by the stamp)."""
        win = tint >= self.times.measure
        if np.count_nonzero(win) == len(win):
            self.sent(len(win), int(ends[-1]), kinds, now)
        elif win.any():
            sizes = np.diff(ends, prepend=0)
            self.sent(int(np.count_nonzero(win)), int(sizes[win].sum()), kinds[win], now)

    # ------------------------------------------------------------------ per-second series

    def _series_add(self, name: str, count: int, now: int) -> None:
        if not self.measuring:
            return
        if self.cur_lo <= now < self.cur_hi:  # the series' last second (most calls)
            self.series[name][-1] += count
            return
        # (a kernel arrival stamp may be a little before the window opened, where the read
        # that took it was after: its second is the first)
        sec = max((now - self.times.measure) // SEC, 0)
        self._roll(sec)
        self.series[name][sec] += count
        self.cur_lo = self.times.measure + (len(self.series["sent"]) - 1) * SEC
        self.cur_hi = self.cur_lo + SEC

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

    def progress(self, open_conns: int, now: int = 0) -> dict:
        """Once a second to the coordinator: totals so far, and for the live page
        (harness.report.live) the last PROGRESS_SECONDS seconds of the window closed by ``now``
        (a late or replaced row loses none), CPU and run-queue wait (s), errors by kind."""
        res = self.res
        return {"worker": res.worker, "open": open_conns, "sent": res.sent,
                "received": res.received, "errors": sum(res.errors.values()),
                "p99": self._second_hist().percentile(99) if self.measuring else None,
                "at": now, "cpu_s": _cpu_s(), "wait_ns": run_queue_wait_ns(),
                "kinds": {k: n for k, n in res.errors.items() if n},
                "reconnects": res.reconnects, "seconds": self._closed_seconds(now)}

    def _closed_seconds(self, now: int) -> list[tuple]:
        """(second, sent, received, errors, bucket indices, counts) of the window's last
        PROGRESS_SECONDS seconds that ``now`` has closed: later events fall in later seconds.
        The histogram travels as its nonzero buckets (it is ``from_counts`` of them), indices
        as uint16 (N_BUCKETS < 2**16) and counts as int32 (a bucket's count in one second)."""
        if not self.measuring or now < self.times.measure:
            return []
        closed = (now - self.times.measure) // SEC
        out = []
        for sec in range(max(closed - PROGRESS_SECONDS, 0), closed):
            counts = self._counts_of(sec)
            nz = np.flatnonzero(counts)
            out.append((sec, *(self._count(name, sec) for name in ("sent", "received",
                                                                     "errors")),
                        nz.astype(np.uint16), counts[nz].astype(np.int32)))
        return out

    def _count(self, name: str, sec: int) -> int:
        col = self.series[name]
        return col[sec] if sec < len(col) else 0

    def _counts_of(self, sec: int) -> np.ndarray:
        """Second ``sec``'s latency bucket counts (closed or still the open one)."""
        if sec < len(self.res.sec_hists):
            return self.res.sec_hists[sec].counts
        if sec == len(self.series["sent"]) - 1:
            return self.res.latency.counts - self.snap
        return np.zeros(0, dtype=np.int64)

    def finish(self, cpu0: os.times_result, wait0: int | None = None) -> WorkerResult:
        """CPU, run-queue wait (from ``wait0``, :func:`run_queue_wait_ns` at the start) and
        wall time since ``begin``, the series closed; the result (more to fill)."""
        res = self.res
        cpu1 = os.times()
        wait1 = run_queue_wait_ns()
        res.cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        if wait0 is not None and wait1 is not None:
            res.wait_s = max(wait1 - wait0, 0) / SEC
        res.wall_s = max((time.monotonic_ns() - self.times.begin) / SEC, 1e-9)
        if self.series["sent"]:
            res.sec_hists.append(self._second_hist())
        res.series = {k: np.asarray(v, dtype=np.int64) for k, v in self.series.items()}
        res.last_recv = self.last_rx
        return res


SCHEDSTAT = "/proc/thread-self/schedstat"


def _cpu_s() -> float:
    """CPU seconds (user + system) this process has used."""
    t = os.times()
    return t.user + t.system


def run_queue_wait_ns() -> int | None:
    """ns this thread has spent runnable but waiting for a CPU (the second field of
    /proc/thread-self/schedstat: on a run queue, not running), or None where the kernel
    does not keep it."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
