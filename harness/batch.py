"""Whole-round message work with numpy: build the next messages, parse what came back.

The worker receives from every ready socket into one shared buffer, keeping only complete
frames there (a partial tail waits in the connection's pending bytes), so the buffer holds
back-to-back whole frames. :class:`Inbound` turns that buffer into arrays (receiving
connection, receive time, stamp fields, validity) once per round; :class:`Outbound` builds
all the round's new messages in one go. Sizes are bytes; times ns.
"""

from __future__ import annotations

import numpy as np

from harness import stamp
from harness.framing import Framing

# ---------------------------------------------------------------------------- outbound


def frame_dtype(header: int, size: int) -> np.dtype:
    """One binary frame of ``size`` bytes as a record: the length prefix, the stamp as fields
    (``st``) and the same bytes as seven u32 words (``w``). Views over a buffer of
    back-to-back frames read and write stamps in place, without copies."""
    return np.dtype({"names": ["hdr", "st", "w"],
                     "formats": [f">u{header}", stamp.BIN_DTYPE, ("<u4", (stamp.WORDS,))],
                     "offsets": [0, header, header], "itemsize": size})


class Outbound:
    """Builds messages into a reusable buffer; every message is ``header + stamp + filler``.

    With one message kind every frame has the same size and the buffer is a 2-D array whose
    headers and fillers are written once: a round only writes the stamp columns.
    """

    def __init__(self, framing: Framing, sizes: list[int], fillers: list[bytes],
                 weights: list[float], key: int, worker: int, seed: int) -> None:
        self.framing = framing
        self.ascii = framing.name == "newline"
        self.ss = stamp.stamp_size(self.ascii)
        self.hdr = framing.header
        self.key = key
        self.worker = worker
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.templates = [self._template(s, f) for s, f in zip(sizes, fillers, strict=True)]
        w = np.asarray(weights, dtype=np.float64)
        self.p = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self.fixed = len(sizes) == 1
        self.rows = 0
        self.buf = np.empty(0, dtype=np.uint8)
        self._grow(4096)

    @staticmethod
    def stamp_room(framing: Framing) -> int:
        """The smallest message size (bytes) that holds framing and stamp."""
        return framing.overhead() + stamp.stamp_size(framing.name == "newline")

    def _template(self, size: int, filler: bytes) -> np.ndarray:
        body_len = size - self.framing.overhead()
        body = bytes(self.ss) + filler[: body_len - self.ss]
        return np.frombuffer(self.framing.encode(body), dtype=np.uint8)

    def _grow(self, rows: int) -> None:
        if self.fixed:
            size = int(self.sizes[0])
            self.rows = rows
            self.buf = np.empty((rows, size), dtype=np.uint8)
            self.buf[:] = self.templates[0]
            if not self.ascii:
                self.words = np.ndarray((rows,), dtype=frame_dtype(self.hdr, size),
                                        buffer=self.buf)["w"]
        else:
            self.rows = rows
            self.buf = np.empty(rows * int(self.sizes.max()), dtype=np.uint8)

    def build(self, gid: np.ndarray, seq0: int, t: np.ndarray | int,
              delay_us: np.ndarray | int) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """Messages for ``gid`` (one entry per message, grouped by connection).

        Returns the bytes, each message's end offset in them, and each message's kind.
        """
        n = len(gid)
        if n > self.rows:
            self._grow(max(n, 2 * self.rows))
        if self.fixed and not self.ascii:
            return self._build_words(gid, seq0, t, delay_us)
        kinds = (np.zeros(n, dtype=np.uint16) if self.fixed else
                 self.rng.choice(len(self.sizes), size=n, p=self.p).astype(np.uint16))
        seq = np.arange(seq0, seq0 + n, dtype=np.uint32)
        st = stamp.make(gid, seq, kinds, self.worker, delay_us, t, self.key)
        raw = stamp.to_bytes(st, self.ascii)
        if self.fixed:
            size = int(self.sizes[0])
            self.buf[:n, self.hdr:self.hdr + self.ss] = raw
            ends = np.arange(size, (n + 1) * size, size, dtype=np.int64)
            return memoryview(self.buf[:n]).cast("B"), ends, kinds
        sizes = self.sizes[kinds]
        ends = np.cumsum(sizes)
        starts = ends - sizes
        flat = self.buf
        for k, tpl in enumerate(self.templates):
            rows = np.flatnonzero(kinds == k)
            if len(rows):
                flat[starts[rows, None] + np.arange(len(tpl))] = tpl
        flat[starts[:, None] + self.hdr + np.arange(self.ss)] = raw
        return memoryview(flat[: int(ends[-1])]), ends, kinds


    def _build_words(self, gid: np.ndarray, seq0: int, t: np.ndarray | int,
                     delay_us: np.ndarray | int) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """The fast path: one size, binary stamps written as words straight into the frames."""
        n = len(gid)
        size = int(self.sizes[0])
        w = self.words[:n]
        w[:, 1] = gid
        w[:, 2] = np.arange(seq0, seq0 + n, dtype=np.uint32)
        w[:, 3] = self.worker << 16
        w[:, 4] = delay_us
        if isinstance(t, np.ndarray):
            t = t.astype(np.uint64)
            w[:, 5] = t & np.uint64(0xFFFFFFFF)
            w[:, 6] = t >> np.uint64(32)
        else:
            w[:, 5] = t & 0xFFFFFFFF
            w[:, 6] = t >> 32
        w[:, 0] = stamp.check_words(w, self.key)
        ends = np.arange(size, (n + 1) * size, size, dtype=np.int64)
        return memoryview(self.buf[:n]).cast("B"), ends, np.zeros(n, dtype=np.uint16)


# ---------------------------------------------------------------------------- inbound


class Parsed:
    """One round's frames as arrays (one entry per frame)."""

    __slots__ = ("conn", "t", "st", "ok", "flen", "bad_conns")

    def __init__(self, conn: np.ndarray, t: np.ndarray, st: np.ndarray, ok: np.ndarray,
                 flen: np.ndarray, bad_conns: list[int]) -> None:
        self.conn = conn  # receiving connection, local index
        self.t = t  # receive time, ns
        self.st = st  # stamps (stamp.BIN_DTYPE)
        self.ok = ok  # stamp present and its check holds
        self.flen = flen  # frame sizes, bytes
        self.bad_conns = bad_conns  # connections whose byte stream broke the framing


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

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], starts: list[int] | None) -> Parsed:
        """``seg_*``: per socket read this round, its connection, end offset, receive time.
        ``starts``: frame start offsets, when the worker walked variable-size frames."""
        total = seg_end[-1]
        a = np.frombuffer(buf, dtype=np.uint8, count=total)
        ends = np.asarray(seg_end, dtype=np.int64)
        if self.fixed:
            return self._parse_fixed(a, seg_conn, ends, seg_t)
        if self.ascii:
            nl = np.flatnonzero(a == 10)
            fstart = np.empty(len(nl), dtype=np.int64)
            fstart[0] = 0
            fstart[1:] = nl[:-1] + 1
            fend = nl + 1
        else:
            fstart = np.asarray(starts, dtype=np.int64)
            fend = np.empty_like(fstart)
            fend[:-1] = fstart[1:]
            fend[-1:] = total
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

    def _parse_fixed(self, a: np.ndarray, seg_conn: list[int], ends: np.ndarray,
                     seg_t: list[int]) -> Parsed:
        size = self.fixed
        frames = np.frombuffer(a, dtype=self.frame_dt, count=len(a) // size)
        counts = np.empty_like(ends)
        counts[0] = ends[0]
        counts[1:] = ends[1:] - ends[:-1]
        counts //= size
        conn = np.repeat(np.asarray(seg_conn, dtype=np.int64), counts)
        t = np.repeat(np.asarray(seg_t, dtype=np.int64), counts)
        w = frames["w"]
        ok = stamp.check_words(w, self.key) == w[:, 0]
        st = frames["st"]  # a view into the round buffer: valid until the next round
        hdr_ok = frames["hdr"] == self.body
        bad: list[int] = []
        if not hdr_ok.all():
            # A prefix that is not ours: the stream cannot be trusted past it. Keep the frames
            # before it, drop the rest of that read, and report the connection.
            keep = np.ones(len(frames), dtype=bool)
            for j in np.flatnonzero(~hdr_ok):
                c = conn[j]
                if c in bad:
                    continue
                bad.append(int(c))
                keep[j:][conn[j:] == c] = False
            conn, t, st, ok = conn[keep], t[keep], st[keep], ok[keep]
        return Parsed(conn, t, st, ok, np.full(len(conn), size, dtype=np.int64), bad)
