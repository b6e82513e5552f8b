"""One round's state beside the transport: the buffer its reads share (kept across steps),
the reads that brought whole frames, and the closed loop's early sends (:class:`Early`: a
read of whole template replies, answered at once by harness.wire.hot.recv_tmpl)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from harness.wire.hot import real_offset_ns, recv_stamped

if TYPE_CHECKING:
    from harness.wire.transport import Transport

CHUNK = 256 * 1024  # most bytes one recv may take in a round
ROUND_BUF = 8 * 1024 * 1024


class RoundBuffer:
    """The buffer one round's reads share (kept by the worker across steps)."""

    def __init__(self, size: int = ROUND_BUF) -> None:
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)

    def grow(self, need: int) -> None:
        self.buf = bytearray(max(need, 2 * len(self.buf)))
        self.mv = memoryview(self.buf)


class Early:
    """Closed loop, one fixed request: a connection whose read was whole template replies
    (:meth:`Transport.read_round`) sends as many next requests at once, as a peer tool does,
    instead of after the round; the sink books them (:meth:`Sink.sent_early`). ``reqs[k]`` is
    k requests; ``owed`` each connection's requests awaiting a reply (a read of k replies
    sends k only when k are owed: then each frees a slot); none sent at or after ``until``
    (ns: the end of sending, or the measure start while outside the window)."""

    __slots__ = ("reqs", "owed", "until")

    def __init__(self, request: bytes, owed: np.ndarray, most: int = 64) -> None:
        self.reqs = [request * k for k in range(most + 1)]
        self.owed = owed
        self.until = 0


class Reads:
    """One round's reads that brought whole frames: per read its connection, end offset
    in the round buffer and receive time; the frame starts walked (variable sizes); the
    connections whose stream broke."""

    __slots__ = ("conn", "end", "t", "walk", "broken")

    def __init__(self, walks: bool) -> None:
        self.conn: list[int] = []
        self.end: list[int] = []
        self.t: list[int] = []
        self.walk: list[int] | None = [] if walks else None
        self.broken: list[int] = []


def read_carefully(tp: Transport, i: int, off: int, r: Reads) -> int:
    """One read after the connection's pending bytes (the buffer grown for one huge
    frame if need be). Returns where the next read goes; -1: no room left this round."""
    s, p, rb = tp.socks[i], tp.pend_in[i], tp.rounds
    if s is None:
        return off
    if off + len(p) + CHUNK > len(rb.buf):
        if off:
            return -1
        rb.grow(len(p) + CHUNK)  # one huge partial frame
    start = off + len(p)
    rb.buf[off:start] = p
    try:
        if tp.stamped_rx:  # the arrival, as the read round takes it
            n, t = recv_stamped(s, rb.mv[start:start + CHUNK], real_offset_ns())
        else:
            n = s.recv_into(rb.mv[start:start + CHUNK])
            t = time.monotonic_ns()
    except OSError as exc:
        tp._recv_failed(i, exc)
        return off
    return tp._keep(i, off, start + n, t, r)
