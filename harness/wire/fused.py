"""A plain closed loop's small echo round in one call (issue 21): its reads, its frames, the
ledger's marks, the credits, the latencies and the next round's sends, each the same step
as the worker's own path takes (harness.wire.hot), without the Python between them.

:func:`echo_round` is harness._hot's ``echo_round`` when it is built, else
:func:`py_echo_round`, the same steps in plain Python (tests/test_fused.py runs both on the
same rounds over real sockets). Like each step alone, it returns at the first case it does
not handle, with what it has done so far, and the worker goes on from there by its own
path: nothing is done twice and nothing is skipped. It changes the arrays it is given (the
reads' buffer, the ledger's bitmap, the credits, the send buffer) as those steps do, and
hands the counts back: the worker books them (harness.worker.events.Events._booked).

``ctx`` (:func:`context`, built once a step; its objects live as long as the step):
sockets, pending input, read chunk, frame size, kernel stamps, the frames' prefix length
and value, stamp key, worker, global ids, most frames a read round takes, outstanding,
credits, progress, whether replies refill credits, blocked, early, the send's message
size, kind word, stamp key, restamp ((hdr, ascii, size, ws) or None) and the most
connections a send round takes.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np

from harness.core.histogram import LIMIT, index_of
from harness.core.ledger import mark_few
from harness.wire import hot
from harness.wire.twins import (
    py_closed_take,
    py_credit_few,
    py_lat_few,
    py_open_commit,
    py_open_pick,
    wheel_candidates,
    wheel_next,
)

# what the call did: the whole round (ROUND); stopped in the reads at (k, off, status, n,
# t) (READ: the transport reads on from there); read whole frames that are not all good
# (PARSE: the numpy parse counts them); took good frames it did not book (ACCOUNT: a
# latency from before the window, or a seq past the ledger's bitmap); or (echo_loop) polled
# a writable connection or the timer (POLLED: readable, writable)
ROUND, READ, PARSE, ACCOUNT, POLLED = 0, 1, 2, 3, 4
# (open_loop) an instant whose sends were late by the client's fault (BEHIND: idx, counts,
# delays, now: Pacer.behind counts them), or did not all go out whole (UNSENT: idx, bounds,
# failed); a read round to book alone (BOOK: its times are another second's)
BEHIND, UNSENT, BOOK = 5, 6, 7
WAIT_NS = 50_000_000  # the longest poll (the worker loop's 0.05 s)
# a ROUND's send: none due (or not sending), the window opens first (EDGE: the worker's
# send round), a round too large for one call (BIG: committed, not built), or sent
NO_SEND, EDGE, BIG, SENT = 0, 1, 2, 3


class Binned(NamedTuple):
    """A round's latencies bucketed straight into the histogram's counts (or a fused loop's,
    added up): how many, their sum, least and greatest, and how many were late."""
    n: int
    total: int
    lo: int
    hi: int
    late: int


NO_BINS = Binned(0, 0, 0, 0, 0)


def context(socks: list, pend: list, chunk: int, fixed: int, stamped: bool, hdr: int,
            body: int, key: int, me: int, gids: list[int], most: int, outstanding: np.ndarray,
            credits: np.ndarray, progress: np.ndarray, refills: bool, blocked: np.ndarray,
            early: np.ndarray, size: int, kw: int, skey: int, restamp: tuple | None,
            send_most: int) -> tuple:
    """The step's part of :func:`echo_round`'s arguments, in its order."""
    return (socks, pend, chunk, fixed, stamped, hdr, body, key, me, gids, most, outstanding,
            credits, progress, refills, blocked, early, size, kw, skey, restamp, send_most)


def py_echo_round(ctx: tuple, ready: list[int], buf: bytearray, out: memoryview,
                  seen: np.ndarray, lo: int, seq0: int, measuring: bool, sending: bool,
                  begin: int, measure: int, end: int, bins: tuple | None = None) -> tuple:
    """One round over ``ready`` (non-empty): read into ``buf``, take the frames, mark,
    credit, time them (``measuring``: received in [measure, end), latencies of messages
    intended from ``measure`` on), then, when ``sending`` and the clock is in [begin, end),
    the plain closed loop's next sends (Pacer.take_closed), built in ``out`` from seq
    ``seq0``.

    Returns one of ``(ROUND, replies, t_last, got, lats, marked, send, now, conns, counts,
    total, bounds, failed)`` (``lats``: lat_few's, or None outside the window), ``(READ, k,
    off, status, n, t, seg_conn, seg_end, seg_t, ready)``, ``(PARSE, seg_conn, seg_end, seg_t)`` or
    ``(ACCOUNT, t_last, conn, t, seq, tint, delay)``. ``bins`` (py_echo_loop's: the
    histogram's counts, the timeout, since and stop_at): the reads are :func:`_bin_read`'s,
    and a ROUND's ``lats`` is a :class:`Binned`."""
    r = _read(ctx, ready, buf, seen, lo, measuring, measure, end, False, bins)
    if r[0] != ROUND:
        return r
    return (*r, *_send(ctx, out, seq0, measuring, sending, begin, measure, end))


def _read(ctx: tuple, ready: list[int], buf: bytearray, seen: np.ndarray, lo: int,
          measuring: bool, measure: int, end: int, open_loop: bool, bins: tuple | None = None
          ) -> tuple:
    """A round's reads, up to the credits (``open_loop``: latencies with service times):
    ``(ROUND, replies, t_last, got, lats, marked)``, or where it stopped."""
    (socks, pend, chunk, fixed, stamped, hdr, body, key, me, gids, most, outstanding, credits,
     progress, refills) = ctx[:15]
    seg_conn: list[int] = []
    seg_end: list[int] = []
    seg_t: list[int] = []
    k, off, status, n, t = hot.py_recv_fixed(socks, pend, ready, 0, buf, 0, len(buf) - chunk,
                                             chunk, fixed, seg_conn, seg_end, seg_t, stamped)
    if status != hot.DONE:
        return READ, k, off, status, n, t, seg_conn, seg_end, seg_t, ready
    if bins is not None and seg_t and seg_end[-1] % fixed == 0:
        b = _bin_read(ctx, buf, seg_conn, seg_end, seg_t, seen, lo, measure, end, *bins)
        return (PARSE, seg_conn, seg_end, seg_t) if b is None else b
    few = hot.py_take_few(buf, seg_conn, seg_end, seg_t, fixed, hdr, body, key, me, gids, most)
    if few is None:
        return PARSE, seg_conn, seg_end, seg_t
    conn, ts, seqs, tint, delay = few
    t_last = max(seg_t) if stamped else seg_t[-1]
    got, lats = 0, None
    if measuring:  # (the lists and bounds: lat_few's)
        lats = py_lat_few(ts, tint, delay, open_loop, measure)
        if lats is None:
            return ACCOUNT, t_last, conn, ts, seqs, tint, delay
        got = sum(1 for x in ts if measure <= x < end)
    marked = mark_few(seqs, seen, lo)
    if marked < 0:
        return ACCOUNT, t_last, conn, ts, seqs, tint, delay
    py_credit_few(conn, t_last, outstanding, credits, progress, refills)
    return ROUND, len(seqs), t_last, got, lats, marked


def _bin_read(ctx: tuple, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], seen: np.ndarray, lo: int, measure: int, end: int,
              hist: np.ndarray, timeout: int, since: int, stop_at: int) -> tuple | None:
    """A read round of whole frames booked in arrays (harness._hot's bin_read): take_few's
    checks (of any number of frames), then, all or nothing, the latencies bucketed
    straight into ``hist`` (the histogram's counts), the ledger's marks and the credits.
    ``(ROUND, replies, t_last, got, Binned, marked)``; None, with nothing changed, when a
    frame is not good, a latency is from before the window or outside the histogram, a seq
    is past the ledger's bitmap, or the round's time is outside [since, stop_at) (its
    second is the usual path's)."""
    (fixed, stamped, hdr, body, key, me, gids, _, outstanding, credits, progress,
     refills) = ctx[3:15]
    t_last = max(seg_t) if stamped else seg_t[-1]
    if not since <= t_last < stop_at or \
            max(seg_conn) >= min(len(outstanding), len(credits), len(progress)):
        return None
    few = hot.py_take_few(buf, seg_conn, seg_end, seg_t, fixed, hdr, body, key, me, gids,
                          len(buf))
    if few is None:
        return None
    conn, ts, seqs, tint, delay = few
    lats = [t - ti - d * 1000 for t, ti, d in zip(ts, tint, delay, strict=True)]
    if min(tint) < measure or min(lats) < 0 or max(lats) >= LIMIT \
            or any(s >= len(seen) for s in seqs if s >= lo):
        return None
    idx = index_of(np.array(lats, dtype=np.int64))
    if int(idx.max()) >= len(hist):
        return None
    np.add.at(hist, idx, 1)
    marked = mark_few(seqs, seen, lo)
    py_credit_few(conn, t_last, outstanding, credits, progress, refills)
    got = sum(1 for x in ts if measure <= x < end)
    return ROUND, len(seqs), t_last, got, Binned(len(lats), sum(lats), min(lats), max(lats),
                                                 sum(1 for x in lats if x > timeout)), marked


def _send(ctx: tuple, out: memoryview, seq0: int, measuring: bool, sending: bool, begin: int,
          measure: int, end: int) -> tuple:
    """The round's sends, from the clock read on: (send, now, conns, counts, total, bounds,
    failed)."""
    socks, hdr, gids, size, kw, skey, restamp, send_most = (
        ctx[0], ctx[5], ctx[9], ctx[17], ctx[18], ctx[19], ctx[20], ctx[21])
    now = time.monotonic_ns()
    if not sending or not begin <= now < end:
        return NO_SEND, now, None, None, 0, None, None
    if not measuring and now >= measure:
        return EDGE, now, None, None, 0, None, None
    took = py_closed_take(ctx[12], ctx[15], ctx[11], ctx[13], ctx[16], now, measuring)
    if took is None:
        return NO_SEND, now, None, None, 0, None, None
    conns, counts, total = took
    if len(conns) > send_most or total * size > len(out):
        return BIG, now, conns, counts, total, None, None
    bounds = hot.py_build_few(out, hdr, size, [gids[i] for i in conns], counts, seq0, now,
                              kw, skey)
    lag = None if restamp is None else (restamp[0], restamp[1], now, restamp[2], restamp[3])
    return SENT, now, conns, counts, total, bounds, hot.py_send_bounds(socks, conns, bounds,
                                                                       out, lag)


def py_echo_loop(ctx: tuple, handle: Any, data: dict[int, int], maxevents: int, since: int,
                 stop_at: int, buf: bytearray, out: memoryview, seen: np.ndarray, lo: int,
                 seq0: int, begin: int, measure: int, end: int, hist: np.ndarray | None = None,
                 timeout: int = 1 << 62) -> tuple[tuple, tuple | None]:
    """In the window and sending, rounds one after another (:func:`py_echo_round`, each
    after a poll of ``handle`` as hot.epoll_ready), until the clock passes ``stop_at`` (at
    least one poll). Returns ``(acc, last)``: ``acc`` is what the rounds booked together
    did, ``(polls, replies, t_last, got, lats, lat_lo, lat_hi, marked, sent, nbytes,
    first, last_now, binned)`` (``lats``: a list, or None; ``first`` and ``last_now``: the
    first and last send's clock; ``binned``: a :class:`Binned`); ``last``, None, or the
    round that ended the loop, to book alone: one :func:`py_echo_round` did not finish, a
    ``(POLLED, readable, writable)``, or a whole round whose send was not plain, or whose
    times are not all in [since, stop_at). Given ``hist`` (the latency histogram's
    counts), every round's reads are :func:`_bin_read`'s (``binned`` adds them up), and
    the loop's even when their send ends it."""
    polls = replies = got = marked = sent = nbytes = t_last = first = last_now = lat_lo = 0
    lats: list[int] = []
    lat_hi = 0
    last, binned, bins = None, NO_BINS, None if hist is None else (hist, timeout, since, stop_at)
    while True:
        wait = min(max(stop_at - time.monotonic_ns(), 0), WAIT_NS)
        rd, wr = hot.py_epoll_ready(handle, -(-wait // 1_000_000) / 1e3, maxevents, data)
        polls += 1
        if wr or any(i < 0 for i in rd):
            last = (POLLED, rd, wr)
            break
        if not rd:
            if time.monotonic_ns() >= stop_at:
                break
            continue
        r = py_echo_round(ctx, rd, buf, out, seen, lo, seq0, True, True, begin, measure, end, bins)
        taken = r[0] == ROUND and isinstance(r[4], Binned)
        if taken:  # (its reads are the loop's now: _bin_read took them in [since, stop_at))
            replies, got, marked, t_last = replies + r[1], got + r[3], marked + r[5], r[2]
            binned, r = _add_bins(binned, r[4]), (ROUND, 0, r[2], 0, None, 0, *r[6:])
        if r[0] != ROUND or r[6] in (EDGE, BIG) or r[12] or r[7] >= stop_at \
                or not (taken or since <= r[2] < stop_at):
            last = r
            break
        replies, got, marked, t_last = replies + r[1], got + r[3], marked + r[5], r[2]
        if r[4] is not None:
            lat, a, b = r[4][:3]
            lat_lo, lat_hi = (a, b) if not lats else (min(lat_lo, a), max(lat_hi, b))
            lats += lat
        if r[6] == SENT:
            first = first if sent else r[7]
            sent, nbytes, last_now, seq0 = sent + r[10], nbytes + r[10] * ctx[17], r[7], \
                seq0 + r[10]
    return (polls, replies, t_last, got, lats or None, lat_lo, lat_hi, marked, sent, nbytes,
            first, last_now, binned), last


def _add_bins(a: Binned, b: Binned) -> Binned:
    """Two rounds' :class:`Binned` as one."""
    if not a.n:
        return b
    return Binned(a.n + b.n, a.total + b.total, min(a.lo, b.lo), max(a.hi, b.hi),
                  a.late + b.late)


def py_open_loop(ctx: tuple, handle: Any, data: dict[int, int], maxevents: int, since: int,
                 stop_at: int, wheel: tuple, pace: tuple, buf: bytearray, out: memoryview,
                 seen: np.ndarray, lo: int, seq0: int, begin: int, measure: int, end: int
                 ) -> tuple[tuple, int, list[int], int, tuple | None]:
    """In the window and sending, reads deferred to the send instants: an open loop's
    instants one after another until the clock passes ``stop_at``. Each sleeps to the next
    instant (OpenLoop.next_send; the loop's 0.05 s at most), sends what is due (pick,
    commit, build, send, as Sends._send_few_open), then reads (a round of
    :func:`py_echo_round`'s, with service times). ``wheel``: the DueWheel's order, offs,
    period, base, seen and laggards (a list); ``pace``: sched_base, period, phase, sched,
    alive, sends, backlog, MAX_BURST, BEHIND_US, PICK_FEW, SMALL_OPEN.

    Returns ``(acc, seen, laggards, wake_at, last)``: ``acc`` as :func:`py_echo_loop`'s
    (its ``lats`` the whole lat_few tuple, service times too), the wheel's state after, the
    last next_send's ``wake_at``, and None or what ended the loop: an instant not taken
    (None too: more candidates or senders than a call takes; the worker's send round takes
    it), BEHIND, UNSENT, POLLED, BOOK, or where a read stopped (READ, PARSE, ACCOUNT)."""
    wseen, lag, blocked, last = wheel[4], list(wheel[5]), ctx[15], None
    polls = replies = got = marked = sent = nbytes = t_last = first = last_now = wake = 0
    lists: tuple[list[int], list[int]] = ([], [])
    bounds = [0, 0, 0, 0]  # least and greatest latency, and service time
    while True:
        now, wake = _wake(wheel, pace, blocked, wseen, lag, stop_at)
        if now >= stop_at:
            break
        taken, wseen, lag, done, last = _open_send(ctx, wheel, pace, out, now, wseen, lag, seq0)
        if not taken:
            break
        if done:  # (messages sent this instant)
            first = first if sent else now
            sent, nbytes, last_now, seq0 = sent + done, nbytes + done * ctx[17], now, seq0 + done
        if last is not None:
            break
        rd, wr = hot.py_epoll_ready(handle, 0.0, maxevents, data)
        polls += 1
        if wr or any(i < 0 for i in rd):
            last = (POLLED, rd, wr)
            break
        if rd:
            r = _read(ctx, rd, buf, seen, lo, True, measure, end, True)
            if r[0] != ROUND or not since <= r[2] < stop_at:
                last = (BOOK, *r[1:]) if r[0] == ROUND else r
                break
            replies, got, marked, t_last = replies + r[1], got + r[3], marked + r[5], r[2]
            _gather(lists, bounds, r[4])
        if time.monotonic_ns() >= stop_at:
            break
    lt = (lists[0], bounds[0], bounds[1], lists[1], bounds[2], bounds[3]) if lists[0] else None
    return ((polls, replies, t_last, got, lt, marked, sent, nbytes, first, last_now), wseen,
            lag, wake, last)


def _wake(wheel: tuple, pace: tuple, blocked: np.ndarray, wseen: int, lag: list[int],
          stop_at: int) -> tuple[int, int]:
    """Sleep to the next instant (the loop's 0.05 s, and ``stop_at``, at most): the clock
    then, and the next the client's own schedule owes (OpenLoop.next_send's)."""
    now = time.monotonic_ns()
    nxt, own = _open_next(wheel, pace, blocked, wseen, lag)
    if nxt > now:
        time.sleep(max(min(nxt, now + WAIT_NS, stop_at) - time.monotonic_ns(), 0) / 1e9)
        now = time.monotonic_ns()
    return now, own


def _gather(lists: tuple[list[int], list[int]], bounds: list[int], lats: tuple) -> None:
    """A round's latencies and service times (lat_few's) onto the loop's, with the bounds."""
    for q in (0, 1):
        vals, a, b = lats[3 * q:3 * q + 3]
        empty = not lists[q]
        bounds[2 * q] = a if empty else min(bounds[2 * q], a)
        bounds[2 * q + 1] = b if empty else max(bounds[2 * q + 1], b)
        lists[q].extend(vals)


def _open_next(wheel: tuple, pace: tuple, blocked: np.ndarray, wseen: int, lag: list[int]
               ) -> tuple[int, int]:
    """OpenLoop.next_send: the next instant due, and the next the client's own schedule
    owes (a laggard on backlog owes the server's)."""
    sched_base, period, phase, sched, alive, sends, backlog = pace[:7]
    nxt = own = wheel_next(wheel[1], wheel[2], wheel[3], wseen)
    for i in lag:
        if alive[i] and sends[i] and not blocked[i]:
            due = sched_base + int(phase[i]) + int(sched[i]) * period
            nxt = min(nxt, due)
            own = own if backlog[i] else min(own, due)
    return nxt, own


def _open_send(ctx: tuple, wheel: tuple, pace: tuple, out: memoryview, now: int, wseen: int,
               lag: list[int], seq0: int) -> tuple:
    """An instant's sends: (taken, seen, laggards, messages sent, last). Not taken
    (nothing changed) when it has more candidates or senders than a call takes."""
    (sched_base, period, phase, sched, alive, sends, backlog, burst, behind, pick_most,
     open_most) = pace
    socks, hdr, gids, size, kw, skey, restamp = (ctx[0], ctx[5], ctx[9], ctx[17], ctx[18],
                                                 ctx[19], ctx[20])
    cand, seen2 = wheel_candidates(wheel[0], wheel[1], wheel[2], wheel[3], wseen, now, lag)
    if len(cand) > pick_most:
        return False, wseen, lag, 0, None
    idx, want, lag2 = py_open_pick(cand.tolist(), now - sched_base, period, phase, sched,
                                   alive, sends, ctx[15], None, burst)
    total = sum(want)
    if len(idx) > open_most or total * size > len(out):
        return False, wseen, lag, 0, None
    if not idx:
        return True, seen2, lag2, 0, None
    tint, delay, worst = py_open_commit(idx, want, now, sched_base, period, phase, sched,
                                        ctx[11], ctx[13], backlog, behind)
    bounds = hot.py_build_few_at(out, hdr, size, [gids[i] for i in idx], want, seq0, tint,
                                 delay, kw, skey)
    lagt = None if restamp is None else (restamp[0], restamp[1], now, restamp[2], restamp[3])
    failed = hot.py_send_bounds(socks, idx, bounds, out, lagt)
    last = (UNSENT, idx, bounds, failed) if failed else \
        (BEHIND, idx, want, delay, now) if worst > behind else None
    return True, seen2, lag2, total, last


native: Any = hot.native if hasattr(hot.native, "echo_loop") else None
echo_round = native.echo_round if native is not None else py_echo_round
echo_loop = native.echo_loop if native is not None else py_echo_loop
open_loop = native.open_loop if native is not None else py_open_loop
