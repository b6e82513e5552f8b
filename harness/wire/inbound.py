"""Whole-round message work with numpy, inbound: the worker receives from every ready socket
into one shared buffer, keeping only complete frames there (a partial tail waits in the
connection's pending bytes), so the buffer holds back-to-back whole frames. :class:`Inbound`
turns it into arrays (receiving connection, receive time, stamp fields, validity) once per
round (:class:`Parsed`), or a few frames into lists (:meth:`Inbound.take_few`). Sizes are
bytes; times ns.
"""

from __future__ import annotations

import numpy as np

from harness.wire import hot, stamp
from harness.wire.batch import frame_dtype
from harness.wire.framing import Framing

# Up to this many messages a round, plain Python beats numpy's fixed costs (callgrind
# instructions, tests/bench/round_ir.py: a numpy call costs about as much as 3-4 element
# reads or ~5 lines of Python per message): closed-loop sends (build_few, no per-message
# times), open-loop sends (commit_few and build_few_at; harness.wire.batch's SMALL_ROUND and
# SMALL_OPEN) and reads (take_few and accounting).
SMALL_READ = 128 if hot.native is not None else 12  # (with C, as batch.SMALL_OPEN)


def frame_ends(fstart: np.ndarray, total: int) -> np.ndarray:
    """Each frame's end: the next one's start, and ``total`` for the last (the frames of
    a round, back to back; cheaper than ``np.append``)."""
    fend = np.empty_like(fstart)
    fend[:-1] = fstart[1:]
    fend[-1:] = total
    return fend


class Parsed:
    """One round's frames as arrays (one entry per frame)."""

    __slots__ = ("conn", "t", "st", "ok", "flen", "bad_conns", "unsolicited")

    def __init__(self, conn: np.ndarray, t: np.ndarray, st: np.ndarray, ok: np.ndarray,
                 flen: np.ndarray, bad_conns: list[int],
                 unsolicited: list[int] | None = None) -> None:
        self.conn = conn  # receiving connection, local index
        self.t = t  # receive time, ns; never decreasing (reads are parsed in order)
        self.st = st  # stamps (stamp.BIN_DTYPE)
        self.ok = ok  # stamp present and its check holds
        self.flen = flen  # frame sizes, bytes
        self.bad_conns = bad_conns  # connections whose byte stream broke the framing
        # in-order matching: connections that got a reply with no request waiting (their
        # frames with ``ok`` false are those replies)
        self.unsolicited = unsolicited or []


class Inbound:
    """Parses a round buffer of back-to-back whole frames.

    ``fixed_size`` (bytes) enables the fast path for length-prefixed frames of one size: the
    buffer is reshaped to (frames, size) and the prefixes checked in one comparison. Any
    other stream (newline, mixed sizes) is split with a vectorized newline scan or with the
    frame starts the worker collected while cutting.
    """

    def __init__(self, framing: Framing, fixed_size: int | None, max_frame: int,
                 key: int) -> None:
        self.framing = framing
        self.ascii = framing.name == "newline"
        self.ss = stamp.stamp_size(self.ascii)
        self.hdr = framing.header
        self.max_frame = max_frame
        self.key = key
        self.fixed = fixed_size if (fixed_size and framing.header) else None
        if self.fixed:
            self.body = self.fixed - self.hdr
            self.frame_dt = frame_dtype(self.hdr, self.fixed)
        self.cols = np.arange(self.ss, dtype=np.int64) + self.hdr

    def take_few(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
                 seg_t: list[int], me: int, gids: list[int]
                 ) -> tuple[list[int], list[int], list[int], list[int], list[int]] | None:
        """A small round of fixed-size frames, whole frames in each read, each a good stamp
        of worker ``me``'s own message on its connection (``gids``: each connection's global
        id): each frame's connection and receive time, seq, intended send time (ns) and
        delay (µs), without arrays (harness.wire.hot: in C when built). None when the round
        is not that, or any frame is not good: :meth:`parse` then takes the round and counts
        what is wrong."""
        if self.fixed is None:
            return None
        return hot.take_few(buf, seg_conn, seg_end, seg_t, self.fixed, self.hdr, self.body,
                            self.key, me, gids, SMALL_READ)

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], starts: list[int] | None) -> Parsed:
        """``seg_*``: per socket read this round, its connection, end offset, receive time.
        ``starts``: frame start offsets, when the worker walked variable-size frames."""
        if self.fixed:
            return self._parse_fixed(buf, seg_conn, seg_end, seg_t)
        total = seg_end[-1]
        a = np.frombuffer(buf, dtype=np.uint8, count=total)
        ends = np.asarray(seg_end, dtype=np.int64)
        if self.ascii:
            nl = np.flatnonzero(a == 10)
            fstart = np.empty(len(nl), dtype=np.int64)
            fstart[0] = 0
            fstart[1:] = nl[:-1] + 1
            fend = nl + 1
        else:
            fstart = np.asarray(starts, dtype=np.int64)
            fend = frame_ends(fstart, total)
        seg = np.searchsorted(ends, fstart, side="right")
        conn = np.asarray(seg_conn, dtype=np.int64)[seg]
        t = np.asarray(seg_t, dtype=np.int64)[seg]
        length = fend - fstart
        short = length < self.hdr + self.ss + self.framing.trailer
        idx = np.minimum(fstart[:, None] + self.cols, total - 1)
        st, ok = stamp.from_bytes(a[idx], self.ascii, self.key)
        ok &= ~short
        bad = np.unique(conn[length > self.max_frame]).tolist() if self.ascii else []
        return Parsed(conn, t, st, ok, length, bad)

    def _parse_fixed(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
                     seg_t: list[int]) -> Parsed:
        """Frames of one size. A round is a few numpy calls whatever its size; with one frame
        per read (low concurrency) the per-frame arrays are the per-read lists as they are."""
        size = self.fixed
        assert size is not None  # only called with frames of one size
        n = seg_end[-1] // size
        frames = np.frombuffer(buf, dtype=self.frame_dt, count=n)
        conn = np.array(seg_conn, dtype=np.int64)
        t = np.array(seg_t, dtype=np.int64)
        if n != len(seg_conn):  # some reads brought several frames (every read brings one)
            ends = np.array(seg_end, dtype=np.int64)
            counts = ends.copy()
            counts[1:] -= ends[:-1]
            counts //= size
            conn, t = conn.repeat(counts), t.repeat(counts)
        w = frames["w"]
        ok = stamp.check_words(w, self.key) == w[:, 0]
        st = frames["st"]  # a view into the round buffer: valid until the next round
        hdr_bad = frames["hdr"] != self.body
        bad: list[int] = []
        if np.count_nonzero(hdr_bad):
            # A prefix that is not ours: the stream cannot be trusted past it. Keep the frames
            # before it, drop the rest of that read, and report the connection.
            keep = np.ones(len(frames), dtype=bool)
            for j in np.flatnonzero(hdr_bad):
                c = conn[j]
                if c in bad:
                    continue
                bad.append(int(c))
                keep[j:][conn[j:] == c] = False
            conn, t, st, ok = conn[keep], t[keep], st[keep], ok[keep]
        flen = np.empty(len(conn), dtype=np.int64)
        flen.fill(size)
        return Parsed(conn, t, st, ok, flen, bad)
