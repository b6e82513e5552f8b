"""Whole-round message work with numpy, outbound: :class:`Outbound` builds all the round's new
messages in one go (what came back is parsed by harness.wire.inbound). Sizes are bytes;
times ns.
"""

from __future__ import annotations

import numpy as np

from harness.wire import hot, stamp
from harness.wire.framing import Framing


def frame_dtype(header: int, size: int) -> np.dtype:
    """One binary frame of ``size`` bytes as a record: the length prefix, the stamp as fields
    (``st``) and the same bytes as seven u32 words (``w``). Views over a buffer of
    back-to-back frames read and write stamps in place, without copies."""
    return np.dtype({"names": ["hdr", "st", "w"],
                     "formats": [f">u{header}", stamp.BIN_DTYPE, ("<u4", (stamp.WORDS,))],
                     "offsets": [0, header, header], "itemsize": size})


SizeSpec = int | tuple[int, int] | list[int]  # fixed, uniform [lo, hi], or drawn from a list


def size_bounds(spec: SizeSpec) -> tuple[int, int]:
    if isinstance(spec, int):
        return spec, spec
    if isinstance(spec, tuple):
        return spec[0], spec[1]
    return min(spec), max(spec)


class Outbound:
    """Builds messages into a reusable buffer; every message is ``header + stamp + filler``.

    With one kind of one size (and no corpus) every frame has the same size: the buffer is
    a 2-D array whose headers and fillers are written once, and a round writes only the
    stamps. Otherwise each message's kind, size and filler are drawn (seeded) and the frames
    are assembled with a few vectorized scatters per round.
    """

    def __init__(self, framing: Framing, kinds: list, fillers: list[bytes], key: int,
                 worker: int, seed: int, corpus: list[bytes] | None = None,
                 by_connection: bool = False) -> None:
        self.framing = framing
        self.ascii = framing.name == "newline"
        self.ss = stamp.stamp_size(self.ascii)
        self.hdr = framing.header
        self.over = framing.overhead() + self.ss  # bytes besides the filler
        self.key = key
        self.worker = worker
        self.specs = [k.size for k in kinds]
        w = np.asarray([k.weight for k in kinds], dtype=np.float64)
        self.p = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self.by_connection = by_connection
        self.cum = np.cumsum(self.p)[:-1]
        self.fixed = len(kinds) == 1 and isinstance(self.specs[0], int) and not corpus
        self.rows = 0
        if self.fixed:
            self.template = self._template(self.specs[0], fillers[0])
        else:
            top = max(size_bounds(sp)[1] for sp in self.specs) - self.over
            if corpus:
                lens = np.array([len(x) for x in corpus], dtype=np.int64)
                self.pattern = np.frombuffer(b"".join(corpus), dtype=np.uint8)
                self.line_len, self.line_off = lens, np.cumsum(lens) - lens
            else:
                self.pattern = np.frombuffer(b"".join(f[:top].ljust(top, b"x") for f in fillers),
                                             dtype=np.uint8)
                self.kind_off = np.arange(len(kinds), dtype=np.int64) * top
            self.corpus = bool(corpus)
        self.buf = np.empty(0, dtype=np.uint8)
        self._grow(4096)

    @staticmethod
    def stamp_room(framing: Framing) -> int:
        """The smallest message size (bytes) that holds framing and stamp."""
        return framing.overhead() + stamp.stamp_size(framing.name == "newline")

    def _template(self, size: int, filler: bytes) -> np.ndarray:
        body_len = size - self.framing.overhead()
        body = bytes(self.ss) + filler[: body_len - self.ss].ljust(body_len - self.ss, b"x")
        return np.frombuffer(self.framing.encode(body), dtype=np.uint8)

    def _grow(self, rows: int) -> None:
        self.rows = rows
        if self.fixed:
            size = int(self.specs[0])
            self.buf = np.empty((rows, size), dtype=np.uint8)
            self.buf[:] = self.template
            if not self.ascii:
                self.words = np.ndarray((rows,), dtype=frame_dtype(self.hdr, size),
                                        buffer=self.buf)["w"]
                self.words[:, 3] = self.worker << 16  # kind 0 | worker: the same every round
                self.flat = self.buf.reshape(-1).data  # the same bytes, for build_few
        else:
            self.buf = np.empty(0, dtype=np.uint8)

    def build(self, gid: np.ndarray, seq0: int, t: np.ndarray | int,
              delay_us: np.ndarray | int) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """Messages for ``gid`` (one entry per message, grouped by connection).

        Returns the bytes, each message's end offset in them, and each message's kind.
        """
        n = len(gid)
        if self.fixed:
            if n > self.rows:
                self._grow(max(n, 2 * self.rows))
            if not self.ascii:
                return self._build_words(gid, seq0, t, delay_us)
            kinds = np.zeros(n, dtype=np.uint16)
            st = stamp.make(gid, np.arange(seq0, seq0 + n, dtype=np.uint32), kinds,
                            self.worker, delay_us, t, self.key)
            size = int(self.specs[0])
            self.buf[:n, self.hdr:self.hdr + self.ss] = stamp.to_bytes(st, True)
            ends = np.arange(size, (n + 1) * size, size, dtype=np.int64)
            return self.buf[:n].data.cast("B"), ends, kinds
        return self._build_varied(gid, seq0, t, delay_us)

    def pick_kinds(self, gid: np.ndarray) -> np.ndarray:
        if len(self.specs) == 1:
            return np.zeros(len(gid), dtype=np.uint16)
        if self.by_connection:  # golden-ratio sequence: near the weights for any count
            frac = (np.asarray(gid, dtype=np.float64) * 0.6180339887498949) % 1.0
            return np.searchsorted(self.cum, frac, side="right").astype(np.uint16)
        return self.rng.choice(len(self.specs), size=len(gid), p=self.p).astype(np.uint16)

    def draw(self, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filler length and its offset in the pattern, per message (seeded)."""
        n = len(kinds)
        if self.corpus:
            line = self.rng.integers(0, len(self.line_len), n)
            return self.line_len[line], self.line_off[line]
        fill = np.empty(n, dtype=np.int64)
        for k, spec in enumerate(self.specs):
            sel = kinds == k
            m = int(sel.sum())
            if not m:
                continue
            if isinstance(spec, int):
                fill[sel] = spec
            elif isinstance(spec, tuple):
                fill[sel] = self.rng.integers(spec[0], spec[1] + 1, m)
            else:
                fill[sel] = self.rng.choice(np.asarray(spec, dtype=np.int64), m)
        return fill - self.over, self.kind_off[kinds]

    def _build_varied(self, gid: np.ndarray, seq0: int, t: np.ndarray | int,
                      delay_us: np.ndarray | int) -> tuple[memoryview, np.ndarray, np.ndarray]:
        n = len(gid)
        kinds = self.pick_kinds(gid)
        fill, src = self.draw(kinds)
        size = fill + self.over
        ends = np.cumsum(size)
        starts = ends - size
        total = int(ends[-1])
        if len(self.buf) < total:
            self.buf = np.empty(max(total, 2 * len(self.buf)), dtype=np.uint8)
        out = self.buf
        body = size - self.hdr
        for j in range(self.hdr):  # big-endian length prefix, a byte column at a time
            out[starts + j] = (body >> (8 * (self.hdr - 1 - j))) & 0xFF
        st = stamp.make(gid, np.arange(seq0, seq0 + n, dtype=np.uint32), kinds, self.worker,
                        delay_us, t, self.key)
        out[starts[:, None] + self.hdr + np.arange(self.ss)] = stamp.to_bytes(st, self.ascii)
        f_total = int(fill.sum())
        if f_total:
            ramp = np.arange(f_total) - np.repeat(np.cumsum(fill) - fill, fill)
            out[np.repeat(starts + self.hdr + self.ss, fill) + ramp] = \
                self.pattern[np.repeat(src, fill) + ramp]
        if self.ascii:
            out[ends - 1] = 10
        return out[:total].data, ends, kinds

    def build_few(self, gids: list[int], counts: list[int], seq0: int, t: int
                  ) -> tuple[memoryview, list[int], int]:
        """Closed loop, one size, binary stamps, a small round, without arrays
        (harness.wire.hot: in C when built): ``counts[k]`` messages for connection
        ``gids[k]``, all intended at ``t`` (ns), no delay. Returns the bytes, where each
        connection's messages end in them, and the message count. The same bytes as
        :meth:`build`."""
        size, n = int(self.specs[0]), sum(counts)
        if n > self.rows:
            self._grow(max(n, 2 * self.rows))
        bounds = hot.build_few(self.flat, self.hdr, size, gids, counts, seq0, t,
                               self.worker << 16, self.key)
        return self.flat[:n * size], bounds, n

    def build_few_at(self, gids: list[int], counts: list[int], seq0: int, tints: list[int],
                     delays: list[int]) -> tuple[memoryview, list[int], int]:
        """:meth:`build_few` with each message's own intended time (ns) and delay (µs): an
        open-loop small round. The same bytes as :meth:`build`."""
        size, n = int(self.specs[0]), len(tints)
        if n > self.rows:
            self._grow(max(n, 2 * self.rows))
        bounds = hot.build_few_at(self.flat, self.hdr, size, gids, counts, seq0, tints,
                                  delays, self.worker << 16, self.key)
        return self.flat[:n * size], bounds, n

    def _build_words(self, gid: np.ndarray, seq0: int, t: np.ndarray | int,
                     delay_us: np.ndarray | int) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """The fast path: one size, binary stamps written as words straight into the frames."""
        n = len(gid)
        size = int(self.specs[0])
        w = self.words[:n]
        w[:, 1] = gid
        w[:, 2] = np.arange(seq0, seq0 + n, dtype=np.uint32)
        w[:, 4] = delay_us  # (column 3, kind 0 | worker, was written by _grow)
        if isinstance(t, np.ndarray):
            t = t.astype(np.uint64)
            w[:, 5] = t & np.uint64(0xFFFFFFFF)
            w[:, 6] = t >> np.uint64(32)
        else:
            w[:, 5] = t & 0xFFFFFFFF
            w[:, 6] = t >> 32
        w[:, 0] = stamp.check_words(w, self.key)
        ends = np.arange(size, (n + 1) * size, size, dtype=np.int64)
        return self.buf[:n].data.cast("B"), ends, np.zeros(n, dtype=np.uint16)


# Up to this many messages a round, plain Python beats numpy's fixed costs (callgrind
# instructions, tests/bench/round_ir.py): closed-loop sends (build_few, no per-message
# times) and open-loop sends (commit_few and build_few_at); reads: harness.wire.inbound.
# With harness._hot built, the per-message part of the small paths is C, and they beat
# numpy further: 16 open-loop messages a round cost 10-14% less CPU, 20 x 1 closed ran
# 27% faster, and 32-48 a round no slower (docs/PERFORMANCE.md, 2026-12-06). With the open
# loop's pick and the latencies in C too, rounds of up to 128 took 7-20% less CPU at 100
# connections x 600-1,000/s, and closed 100 x 1 ran about 8% faster (sixth stop)
SMALL_ROUND = 128 if hot.native is not None else 32
SMALL_OPEN = 128 if hot.native is not None else 8
