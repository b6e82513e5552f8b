"""The worker's per-socket and per-message loops, in C when ``harness._hot`` is built, else
in plain Python: the same functions, the same results (tests/test_hot.py runs both on the
same inputs over real sockets).

``harness/_hot.c`` is an optional extension (setup.py: ``Extension(optional=True)``, so
``pip install -e .`` works without a compiler). ``HARNESS_PURE=1`` uses the Python ones
even when it is built; ``harness --version`` says which (harness.accel.native). Each function
returns to its caller at the first case it does not handle, which then goes on exactly as
before: no state lives in C. Figures: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import errno
import select
import struct
import time
from typing import Any

import numpy as np

from harness import accel
from harness.core.ledger import mark_few as py_mark_few
from harness.core.units import SEC
from harness.wire import stamp
from harness.wire.restamp import Lag, Restamp
from harness.wire.twins import (  # (the pure twins, named here too: tests and the fallback)
    py_closed_take,
    py_commit_closed,
    py_credit_few,
    py_lat_few,
    py_open_commit,
    py_open_pick,
    py_ring_pop,
    py_ring_push,
)

_WORDS = struct.Struct(f"<{stamp.WORDS}I")
_M32 = 0xFFFFFFFF

# recv_fixed's and recv_tmpl's status: all read; ready[k] needs the careful read; its recv
# failed (n is the errno); it read n bytes at t that are not whole fixed-size frames (nor
# template replies); (recv_tmpl) its early send went out in part, n bytes of it
DONE, CAREFUL, FAILED, LOOK, QUEUE = 0, 1, 2, 3, 4


native = accel.native()[0]  # (why not, when None: harness.accel.describe)


# ---------------------------------------------------------------------- the pure ones

def py_recv_fixed(socks: list, pend: list, ready: list[int], k: int, buf: bytearray,
                  off: int, last: int, chunk: int, fixed: int, seg_conn: list[int],
                  seg_end: list[int], seg_t: list[int], stamped: bool = False
                  ) -> tuple[int, int, int, int, int]:
    """A read round over ``ready[k:]`` of whole frames of ``fixed`` bytes into ``buf`` at
    ``off`` (see harness/_hot.c): :func:`py_recv_tmpl` with no template. Returns (k, off,
    status, n, t)."""
    return py_recv_tmpl(socks, pend, ready, k, buf, off, last, chunk, fixed, seg_conn, seg_end,
                        seg_t, _NO_TMPL, 0, 0, [], [], None, stamped)


_NO_TMPL = memoryview(b"")

# Kernel receive stamps: SO_TIMESTAMPNS (Linux; Python names it from 3.13 on, and
# SCM_TIMESTAMPNS is the same number) gives each read a struct timespec on CLOCK_REALTIME,
# in a control message of CMSG_SPACE(16) bytes (this module opens no socket of its own)
SOL_SOCKET, SO_TIMESTAMPNS, STAMP_SPACE = 1, 35, 32
_TS = struct.Struct("qq")


OFFSET_WIDE_NS, OFFSET_TRIES = 2000, 4  # real_offset_ns: a reading this wide is retried
_last_offset: list[int] = []  # the last tight reading


def real_offset_ns() -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, ns (the realtime read between two monotonic
    reads, less their midpoint): puts a kernel receive stamp on time.monotonic_ns(). A
    reading whose monotonic reads lie over OFFSET_WIDE_NS apart (the thread lost its core
    between them, so the midpoint may be that far off) is tried again, up to OFFSET_TRIES
    times; failing that, the last tight reading stands (the clocks drift by NTP's slew)."""
    best, width = 0, 1 << 62
    for _ in range(OFFSET_TRIES):
        a = time.monotonic_ns()
        r = time.time_ns()
        b = time.monotonic_ns()
        if b - a < width:
            best, width = r - (a + (b - a) // 2), b - a
        if width <= OFFSET_WIDE_NS:
            _last_offset[:] = [best]
            return best
    return _last_offset[0] if _last_offset else best


def recv_stamped(s: Any, into: memoryview, offset: int) -> tuple[int, int]:
    """One read of a socket with SO_TIMESTAMPNS set: (bytes, arrival ns on
    time.monotonic_ns()'s clock by ``offset``). The arrival is the kernel's stamp of the
    read's last segment, never later than the clock read just after the read, which it is
    when the read carried no stamp."""
    n, anc, _flags, _addr = s.recvmsg_into([into], STAMP_SPACE)
    now = time.monotonic_ns()
    for level, kind, data in anc:
        if level == SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TS.size:
            sec, nsec = _TS.unpack_from(data)
            return n, min(sec * SEC + nsec - offset, now)
    return n, now


def py_recv_tmpl(socks: list, pend: list, ready: list[int], k: int, buf: bytearray,
                 off: int, last: int, chunk: int, fixed: int, seg_conn: list[int],
                 seg_end: list[int], seg_t: list[int], rep: memoryview, tlen: int, code: int,
                 walk: list[int], codes: list[int], early: tuple | None,
                 stamped: bool = False) -> tuple[int, int, int, int, int]:
    """As :func:`py_recv_fixed`, and a read of copies of the protocol's template reply
    (``rep``: the template repeated, ``tlen`` bytes each, reply code ``code``) is that many
    whole replies: their starts join ``walk``, their codes ``codes``, and with ``early``
    ((reqs, owed, until, pend_out, sent_conn, sent_end, sent_t): the closed loop sends
    early, harness.wire.rounds.Early) the connection's next requests go out at once (see
    harness/_hot.c). Returns (k, off, status, n, t); QUEUE: that early send went out in
    part, ``n`` bytes of it (its entry is the last of sent_*). With ``stamped`` (the sockets
    have SO_TIMESTAMPNS) a read's time is its arrival (:func:`recv_stamped`)."""
    mv, mono = memoryview(buf), time.monotonic_ns
    n = t = 0
    offset = real_offset_ns() if stamped else 0
    for k in range(k, len(ready)):  # noqa: B020 (k goes on from where it was)
        i = ready[k]
        s = socks[i]
        if s is None or pend[i] or off > last:
            return k, off, CAREFUL, 0, 0
        try:
            if stamped:
                n, t = recv_stamped(s, mv[off:off + chunk], offset)
            else:
                n = s.recv_into(mv[off:off + chunk])
                t = mono()
        except OSError as exc:
            return k, off, FAILED, exc.errno or errno.EIO, 0
        queued = 0
        if n and fixed and n % fixed == 0:
            pass
        elif n and tlen and n % tlen == 0 and n <= len(rep) and buf.startswith(rep[:n], off):
            if n == tlen:
                walk.append(off)
                codes.append(code)
            else:
                walk.extend(range(off, off + n, tlen))
                codes.extend([code] * (n // tlen))
            if early is not None:
                queued = _send_early(socks, i, n // tlen, t, early)
        else:
            return k, off, LOOK, n, t
        seg_conn.append(i)
        seg_end.append(off + n)
        seg_t.append(t)
        off += n
        if queued:
            return k, off, QUEUE, queued - 1, t
    return len(ready), off, DONE, n, t


def _send_early(socks: list, i: int, k: int, t: int, early: tuple) -> int:
    """Connection ``i`` read ``k`` replies at ``t``: send its next ``k`` requests now, when
    the run sends early and they are owed (kept in sent_* with the send time). A send that
    fails or would block sends nothing here (the round's own send takes over). Returns 0,
    or the bytes a send that went out in part sent, plus one."""
    reqs, owed, until, pend_out, sent_conn, sent_end, sent_t = early
    if t >= until or owed[i] < k or k >= len(reqs) or pend_out[i] is not None:
        return 0
    ts = time.monotonic_ns()  # (the send's time: the request is in the window by it)
    if ts >= until:
        return 0
    data = reqs[k]
    try:
        n = socks[i].send(data)
    except OSError:
        return 0
    sent_conn.append(i)
    sent_end.append(k)
    sent_t.append(ts)
    return n + 1 if n < len(data) else 0


def py_send_bounds(socks: list, idx: list[int] | np.ndarray, bounds: list[int], data: memoryview,
                   lag: Lag | None = None) -> list[tuple[int, int, int]]:
    """One send per connection: ``data[bounds[k-1]:bounds[k]]`` to ``socks[idx[k]]``.
    Returns (k, bytes sent, errno or 0) of those that did not go out whole. With ``lag``
    ((hdr, ascii, t0, message size or int64 message ends)), just before each send its
    messages' stamps add to their delay how long after ``t0`` it went out
    (harness.wire.restamp)."""
    out: list[tuple[int, int, int]] = []
    a = 0
    rs = None if lag is None else Restamp(lag)
    for k, (i, b) in enumerate(zip(idx if isinstance(idx, list) else idx.tolist(), bounds,
                                   strict=True)):
        if rs is not None:
            rs.before_send(data, a, b)
        try:
            n = socks[i].send(data[a:b])
        except OSError as exc:
            out.append((k, 0, exc.errno or errno.EIO))
            a = b
            continue
        if n < b - a:
            out.append((k, n, 0))
        a = b
    return out


def py_take_few(buf: bytearray, seg_conn: list[int], seg_end: list[int], seg_t: list[int],
                size: int, hdr: int, body: int, key: int, me: int, gids: list[int], most: int
                ) -> tuple[list[int], list[int], list[int], list[int], list[int]] | None:
    """A small round of good frames of ``size`` bytes, whole frames in each read, at most
    ``most`` in all, each this worker's own on its connection: each frame's connection and
    receive time (the inputs themselves when each read holds one), seq, intended send time
    (ns) and delay (µs); None when the round is not that (the numpy path then counts what
    is wrong)."""
    n = len(seg_conn)
    if not n or len(seg_end) != n or len(seg_t) != n or not 0 <= hdr <= 8 or size < hdr + 28:
        return None
    total = seg_end[-1]
    if total < n * size or total % size or total // size > most:
        return None
    multi = total != n * size
    unpack = _WORDS.unpack_from
    w0, w1, w2, w3, w4, w5 = stamp.WEIGHTS_INT
    conns: list[int] = []
    ts: list[int] = []
    seqs: list[int] = []
    tint: list[int] = []
    delay: list[int] = []
    prev = 0
    for c, end, t in zip(seg_conn, seg_end, seg_t, strict=True):
        if end <= prev or (end - prev) % size or end > len(buf) or not 0 <= c < len(gids):
            return None
        for at in range(prev, end, size):
            if int.from_bytes(buf[at:at + hdr], "big") != body:
                return None
            check, gid, seq, kw, d, lo, hi = unpack(buf, at + hdr)
            if (gid * w0 + seq * w1 + kw * w2 + d * w3 + lo * w4 + hi * w5 + key) & _M32 \
                    != check or kw >> 16 != me or gid != gids[c]:
                return None
            seqs.append(seq)
            tint.append(lo | hi << 32)
            delay.append(d)
            if multi:
                conns.append(c)
                ts.append(t)
        prev = end
    return (conns, ts, seqs, tint, delay) if multi else (seg_conn, seg_t, seqs, tint, delay)


def py_build_few(out: memoryview, hdr: int, size: int, gids: list[int], counts: list[int],
                 seq0: int, t: int, kw: int, key: int) -> list[int]:
    """Stamp ``counts[k]`` messages for ``gids[k]`` into ``out`` (frames of ``size``
    bytes), seqs from ``seq0``, all intended at ``t`` with no delay. Returns where each
    connection's messages end."""
    w0, w1, w2, _, w4, w5 = stamp.WEIGHTS_INT
    lo, hi = t & _M32, t >> 32 & _M32
    fixed = kw * w2 + lo * w4 + hi * w5 + key  # delay 0
    pack, at, seq = _WORDS.pack_into, hdr, seq0
    bounds: list[int] = []
    for g, c in zip(gids, counts, strict=True):
        for _ in range(c):
            s = seq & _M32
            pack(out, at, (g * w0 + s * w1 + fixed) & _M32, g, s, kw, 0, lo, hi)
            at += size
            seq += 1
        bounds.append(at - hdr)
    return bounds


def py_build_few_at(out: memoryview, hdr: int, size: int, gids: list[int],
                    counts: list[int], seq0: int, tints: list[int], delays: list[int],
                    kw: int, key: int) -> list[int]:
    """:func:`py_build_few` with each message's own intended time (ns) and delay (µs)."""
    w0, w1, w2, w3, w4, w5 = stamp.WEIGHTS_INT
    fixed = kw * w2 + key
    pack, at, seq, j = _WORDS.pack_into, hdr, seq0, 0
    bounds: list[int] = []
    for g, c in zip(gids, counts, strict=True):
        for _ in range(c):
            s, t, d = seq & _M32, tints[j], delays[j] & _M32
            lo, hi = t & _M32, t >> 32 & _M32
            pack(out, at, (g * w0 + s * w1 + d * w3 + lo * w4 + hi * w5 + fixed) & _M32,
                 g, s, kw, d, lo, hi)
            at += size
            seq += 1
            j += 1
        bounds.append(at - hdr)
    return bounds


def py_epoll_ready(ep: select.epoll, timeout_s: float, maxevents: int, data: dict[int, int]
                   ) -> tuple[list[int], list[int]]:
    """Wait up to ``timeout_s`` on ``ep`` (whole ms, rounded up; negative: no limit): the
    numbers (``data[fd]``) of the readable and of the writable files. (The C one takes
    ``ep.fileno()``: :func:`poll_handle`.)"""
    events = ep.poll(timeout_s, maxevents)
    if not events:
        return [], []
    readable = [data[fd] for fd, ev in events if ev & NOT_OUT]
    writable = [data[fd] for fd, ev in events if ev & NOT_IN]
    return readable, writable


NOT_OUT = ~select.EPOLLOUT  # as selectors: anything but "writable" wakes the reader (EOF,
NOT_IN = ~select.EPOLLIN  # errors), anything but "readable" the writer


def poll_handle(ep: select.epoll) -> select.epoll | int:
    """What :func:`epoll_ready` takes: the epoll object (Python), or its fd (C)."""
    return ep if native is None else ep.fileno()


if native is not None:
    recv_fixed = native.recv_fixed
    recv_tmpl = native.recv_tmpl
    send_bounds = native.send_bounds
    take_few = native.take_few
    build_few = native.build_few
    build_few_at = native.build_few_at
    epoll_ready = native.epoll_ready
    credit_few = native.credit_few
    mark_few = native.mark_few
    closed_take = native.closed_take
    open_commit = native.open_commit
    open_pick = native.open_pick
    lat_few = native.lat_few
    ring_pop = native.ring_pop
    ring_push = native.ring_push
    commit_closed = native.commit_closed
else:
    recv_fixed = py_recv_fixed
    recv_tmpl = py_recv_tmpl
    send_bounds = py_send_bounds
    take_few = py_take_few
    build_few = py_build_few
    build_few_at = py_build_few_at
    epoll_ready = py_epoll_ready
    credit_few = py_credit_few
    mark_few = py_mark_few
    closed_take = py_closed_take
    open_commit = py_open_commit
    open_pick = py_open_pick
    lat_few = py_lat_few
    ring_pop = py_ring_pop
    ring_push = py_ring_push
    commit_closed = py_commit_closed
