"""Stamped messages inside binary WebSocket messages (:class:`WsProtocol`): every message of
a round masked at once on the way out (harness.protocols.ws.wsframe); server frames cut in
place on the way in, so the round buffer holds back-to-back payloads, each the stamped frame
raw TCP would carry, parsed by :class:`~harness.wire.protocol.Stamped` unchanged."""

from __future__ import annotations

import numpy as np

from harness.protocols.ws.wsdeflate import Deflate
from harness.protocols.ws.wsframe import OP_BINARY, Deframer, mask_frames
from harness.wire import stamp
from harness.wire.batch import Outbound
from harness.wire.framing import Framing
from harness.wire.inbound import Parsed
from harness.wire.protocol import Stamped


class WsProtocol(Stamped):
    """Stamped messages inside binary WebSocket messages (one message, one stamped frame
    of the run's framing)."""

    def __init__(self, framing: Framing, out: Outbound, fixed: int | None, max_frame: int,
                 key: int, n: int = 0, deflate: bool = False) -> None:
        super().__init__(framing, out, fixed, max_frame, key)
        self.fixed = None  # every read is cut: WebSocket headers sit between payloads
        self.walks = True
        self.deframer = Deframer(max_frame, deflate)
        self.deflate = Deflate(n, max_frame) if deflate else None  # --ws-compress

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None,
            broken: list[int]) -> tuple[int, int]:
        assert walk is not None
        closes = len(self.deframer.closes)
        cut, keep, ok = self.deframer.cut(buf, i, start, end, walk)
        if not ok and len(self.deframer.closes) == closes:
            broken.append(i)
        return cut, keep

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        data, ends, kinds = self.out.build(gid, seq0, tint, delay)
        return (*self.frame(data, ends, idx, counts, OP_BINARY), kinds)

    def frame(self, data: memoryview, ends: np.ndarray, idx: np.ndarray, counts: np.ndarray,
              opcode: int) -> tuple[memoryview, np.ndarray]:
        """A round's messages as masked client frames (compressed where negotiated)."""
        d = self.deflate
        if d is not None and d.any:
            body, ends, ops = d.compress(data, ends, idx.repeat(counts), opcode)
            return mask_frames(memoryview(body), ends, ops)
        return mask_frames(data, ends, opcode)

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        """Each message of the round is one frame, whatever it holds: a message that is
        not a whole stamped frame (text, junk, a few bytes) is one bad frame, and the
        messages beside it parse as they are. The fixed-size fast path takes a round only
        when every message in it has the run's one size."""
        buf, seg_end, walk, bad = self.inflated(buf, seg_conn, seg_end, walk)
        assert walk is not None
        size = self.inbound.fixed
        p = self.inbound.parse(buf, seg_conn, seg_end, seg_t, walk) if size and \
            len(walk) * size == seg_end[-1] and _strided(walk, size) else None
        if p is None or p.bad_conns:  # (a foreign prefix ends a raw stream, not a message)
            p = self._messages(buf, seg_conn, seg_end, seg_t, walk)
        p.bad_conns.extend(bad)
        return p

    def _messages(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
                  seg_t: list[int], walk: list[int]) -> Parsed:
        """The round message by message (``walk``: where each starts): a message is a good
        frame when it holds a good stamp and its framing agrees with its length (the length
        prefix, or the newline that ends it)."""
        total = seg_end[-1]
        a = np.frombuffer(buf, dtype=np.uint8, count=total)
        fstart = np.asarray(walk, dtype=np.int64)
        fend = np.append(fstart[1:], total)
        seg = np.searchsorted(np.asarray(seg_end, dtype=np.int64), fstart, side="right")
        inb, fr = self.inbound, self.framing
        length = fend - fstart
        st, ok = stamp.from_bytes(a[np.minimum(fstart[:, None] + inb.cols, total - 1)],
                                  inb.ascii, self.inbound.key)
        ok &= length >= fr.header + inb.ss + fr.trailer
        if fr.header:
            prefix = np.zeros(len(fstart), dtype=np.int64)
            for j in range(fr.header):  # big-endian, a byte column at a time
                prefix = prefix << 8 | a[np.minimum(fstart + j, total - 1)]
            ok &= prefix == length - fr.header
        if fr.trailer:
            ok &= a[fend - 1] == 10
        return Parsed(np.asarray(seg_conn, dtype=np.int64)[seg],
                      np.asarray(seg_t, dtype=np.int64)[seg], st, ok, length, [])

    def inflated(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
                 walk: list[int] | None) -> tuple[bytearray, list[int], list[int] | None,
                                                  list[int]]:
        """The round with its compressed messages inflated (as is without any), and the
        connections whose inflation broke."""
        flags = self.deframer.compressed
        if self.deflate is None or flags is None or not any(flags) or walk is None:
            if flags:
                flags.clear()
            return buf, seg_end, walk, []
        out = self.deflate.inflate(buf, seg_conn, seg_end, walk, flags)
        flags.clear()
        return out

    def forget(self, i: int) -> None:
        if self.deflate is not None:
            self.deflate.forget(i)


def _strided(walk: list[int], size: int) -> bool:
    """Messages start every ``size`` bytes from 0 (all of the one size)."""
    if len(walk) <= 8:
        return walk == list(range(0, len(walk) * size, size))
    return bool((np.diff(np.asarray(walk, dtype=np.int64)) == size).all()) and walk[0] == 0

