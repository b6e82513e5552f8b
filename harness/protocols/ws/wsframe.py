"""WebSocket (RFC 6455) data framing in batches: client frames built and masked with numpy
over a whole round, server frames cut out of a connection's received bytes in place.

* :func:`mask_frames`: a round's messages (back-to-back payloads and their end offsets)
  become masked client frames, one fresh 4-byte mask per frame (RFC 6455 §5.3: masks drawn
  from ``os.urandom`` a round at a time), XORed with one numpy operation.
* :class:`Deframer`: cuts a connection's server frames in ``buf[start:end]``, moving each
  message's payload down over the headers (so the round buffer holds back-to-back payloads,
  which the stamped parser reads unchanged), answering nothing itself: pings and closes are
  collected for the caller. Frames of one size take a numpy fast path; anything else
  (mixed sizes, control frames, fragmented messages) a careful walk. A frame that breaks
  the protocol (masked, reserved bits, a bad opcode, a 2^63 length, a control frame over
  125 bytes or fragmented, a frame or message over ``max_frame``, a close code that may
  not be sent: 1004-1006, 1015, 1016-2999, under 1000, 5000 and over) stops the cut there:
  one protocol error, and the connection closes (not a ``ws_close_<code>``).

Sizes are bytes.
"""

from __future__ import annotations

import os
import struct

import numpy as np

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
FIN = 0x80
RSV1 = 0x40  # permessage-deflate: a compressed message (its first frame)
MASK_BIT = 0x80
MAX_CONTROL = 125
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
OPCODES = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))


class FrameBroken(Exception):
    """The byte stream broke RFC 6455 here (the reason is the message)."""


def header_size(length: int | np.ndarray, masked: bool) -> int | np.ndarray:
    """Bytes of a frame header for a payload of ``length`` bytes (scalar or array)."""
    base = np.where(length < 126, 2, np.where(length < 65536, 4, 10)) if isinstance(
        length, np.ndarray) else (2 if length < 126 else 4 if length < 65536 else 10)
    return base + (4 if masked else 0)


def encode_frame(opcode: int, payload: bytes, mask: bool, fin: bool = True) -> bytes:
    """One frame (control frames, the close handshake, tests)."""
    n = len(payload)
    b0 = (FIN if fin else 0) | opcode
    mb = MASK_BIT if mask else 0
    if n < 126:
        head = bytes((b0, mb | n))
    elif n < 65536:
        head = bytes((b0, mb | 126)) + _U16.pack(n)
    else:
        head = bytes((b0, mb | 127)) + _U64.pack(n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = np.frombuffer(payload, dtype=np.uint8) ^ np.resize(
        np.frombuffer(key, dtype=np.uint8), n)
    return head + key + body.tobytes()


def mask_frames(data: memoryview | bytes, ends: np.ndarray,
                opcode: int | np.ndarray = OP_BINARY) -> tuple[memoryview, np.ndarray]:
    """Wrap each message ``data[ends[k-1]:ends[k]]`` in a masked client frame of
    ``opcode`` (per message, when an array: RSV1 may ride in it); returns the frames'
    bytes and each frame's end offset."""
    ends = np.asarray(ends, dtype=np.int64)
    n = len(ends)
    src = np.frombuffer(data, dtype=np.uint8, count=int(ends[-1]) if n else 0)
    length = np.diff(ends, prepend=0)
    masks = np.frombuffer(os.urandom(4 * n), dtype=np.uint8).reshape(n, 4)
    if n and length.min() == length.max() and length[0] < 126:
        return _mask_uniform(src, n, int(length[0]), masks, opcode)
    hdr = header_size(length, True)
    assert isinstance(hdr, np.ndarray)
    fsize = hdr + length
    fend = np.cumsum(fsize)
    fstart = fend - fsize
    out = np.empty(int(fend[-1]) if n else 0, dtype=np.uint8)
    out[fstart] = FIN | opcode
    short, mid = length < 126, (length >= 126) & (length < 65536)
    long_ = length >= 65536
    out[fstart + 1] = np.where(short, MASK_BIT | length, np.where(mid, MASK_BIT | 126,
                                                                  MASK_BIT | 127))
    for j in range(2):  # 16-bit lengths, big-endian
        out[fstart[mid] + 2 + j] = (length[mid] >> (8 * (1 - j))) & 0xFF
    for j in range(8):  # 64-bit lengths
        out[fstart[long_] + 2 + j] = (length[long_] >> (8 * (7 - j))) & 0xFF
    kpos = fstart + hdr - 4
    out[kpos[:, None] + np.arange(4)] = masks
    total = int(length.sum())
    if total:
        mstart = fstart + hdr
        ramp = np.arange(total) - np.repeat(ends - length, length)
        dst = np.repeat(mstart - (ends - length), length) + np.arange(total)
        out[dst] = src[:total] ^ masks[np.repeat(np.arange(n), length), ramp & 3]
    return out.data, fend


def _mask_uniform(src: np.ndarray, n: int, size: int, masks: np.ndarray,
                  opcode: int | np.ndarray) -> tuple[memoryview, np.ndarray]:
    """Frames of one payload size under 126: a (frames, 6 + size) array in three writes."""
    out = np.empty((n, 6 + size), dtype=np.uint8)
    out[:, 0] = FIN | opcode
    out[:, 1] = MASK_BIT | size
    out[:, 2:6] = masks
    reps = -(-size // 4)
    out[:, 6:] = src.reshape(n, size) ^ np.tile(masks, reps)[:, :size]
    fend = np.arange(6 + size, (n + 1) * (6 + size), 6 + size, dtype=np.int64)
    return out.data.cast("B"), fend


class Deframer:
    """Cuts server frames (unmasked). After :meth:`cut`, ``pings`` and ``closes`` hold the
    control frames met, as (connection, payload) and (connection, close code), and
    ``empty`` the connection of each empty data message (it holds no stamped frame, and a
    walk entry of no bytes would have no read to belong to)."""

    def __init__(self, max_frame: int, deflate: bool = False) -> None:
        self.max_frame = max_frame
        self.pings: list[tuple[int, bytes]] = []
        self.closes: list[tuple[int, int]] = []
        self.empty: list[int] = []  # the connection of each empty data message (not walked)
        # permessage-deflate may be on: RSV1 allowed, and per message cut (in walk order)
        # whether it is compressed
        self.rsv_ok = RSV1 if deflate else 0
        self.compressed: list[bool] | None = [] if deflate else None

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int]
            ) -> tuple[int, int, bool]:
        """Cut connection ``i``'s bytes ``buf[start:end]``: whole messages' payloads are
        moved to ``buf[start:cut]`` (their starts appended to ``walk``), the bytes still to
        come (raw frames of an unfinished message) to ``buf[cut:keep]``. Returns (cut, keep,
        ok); ``ok`` false: the stream broke (or closed) at ``cut``, nothing is kept."""
        p, w = self._fast(buf, start, end, walk)
        while p < end:
            try:
                got = self._frame(buf, i, p, end)
            except FrameBroken:
                return w, w, False
            if got is None:
                break
            fin, op, hdr, n = got
            if op >= OP_CLOSE:
                p += hdr + n
                if op == OP_CLOSE:
                    return w, w, False
                continue
            if op == OP_CONT:
                return w, w, False  # a continuation with no message begun
            if fin:
                w = self._whole(buf, i, p, hdr, n, w, walk)
                p += hdr + n
                continue
            w, p, stop = self._message(buf, i, p, end, w, walk)
            if stop is not None:
                return stop
        if p > w:
            buf[w:w + end - p] = buf[p:end]
        return w, w + end - p, True

    def _whole(self, buf: bytearray, i: int, p: int, hdr: int, n: int, w: int,
               walk: list[int]) -> int:
        """An unfragmented message at ``p``: its payload moved to ``w`` (an empty one only
        counted: it holds no stamped frame, and is not walked). Returns the write position
        after it."""
        if not n:
            self.empty.append(i)
            return w
        self._begin(walk, w, buf[p])
        buf[w:w + n] = buf[p + hdr:p + hdr + n]
        return w + n

    def _begin(self, walk: list[int], w: int, b0: int) -> None:
        """A message's payload starts at ``w``; ``b0``: its first frame's first byte."""
        walk.append(w)
        if self.compressed is not None:
            self.compressed.append(bool(b0 & RSV1))

    def _message(self, buf: bytearray, i: int, p: int, end: int, w: int, walk: list[int]
                 ) -> tuple[int, int, tuple[int, int, bool] | None]:
        """A fragmented message at ``p``: (write position, raw position, None) after joining
        it at ``w`` when whole; else (.., .., what :meth:`cut` returns): kept raw until the
        rest arrives, or the stream broke."""
        try:
            done = self._fragments(buf, i, p, end)
        except FrameBroken:
            return w, p, (w, w, False)
        if done is None:  # unfinished: keep its frames raw (control frames taken out)
            return w, p, self._keep_raw(buf, i, p, end, w)
        self._begin(walk, w, buf[p])
        start = w
        w, p = self._join(buf, i, p, done, w)
        if w == start:  # all its fragments empty: an empty message
            walk.pop()
            if self.compressed is not None:
                self.compressed.pop()
            self.empty.append(i)
        return w, p, None

    def _fast(self, buf: bytearray, start: int, end: int, walk: list[int]) -> tuple[int, int]:
        """Leading unfragmented binary frames of one size under 126 bytes, in numpy.
        Returns (raw position, write position) after them."""
        if end - start < 2 or buf[start] != FIN | OP_BINARY or buf[start + 1] >= 126:
            return start, start
        size = buf[start + 1]
        if not size:
            return start, start  # empty messages: the walk sets them apart
        fsize = size + 2
        k = (end - start) // fsize
        if k < 4:
            return start, start
        rows = np.frombuffer(buf, dtype=np.uint8, count=k * fsize, offset=start
                             ).reshape(k, fsize)
        if rows[:, :2].tobytes() == bytes((FIN | OP_BINARY, size)) * k:  # (the usual case:
            j = k  # one bytes compare costs a third of the two ufuncs and a reduce below)
        else:
            good = (rows[:, 0] == FIN | OP_BINARY) & (rows[:, 1] == size)
            j = int(np.argmin(good))  # the first frame that is not like the others
        if j:
            payload = rows[:j, 2:].tobytes()
            buf[start:start + j * size] = payload
            walk.extend(range(start, start + j * size, size))
            if self.compressed is not None:
                self.compressed.extend([False] * j)
        return start + j * fsize, start + j * size

    def _frame(self, buf: bytearray, i: int, p: int, end: int
               ) -> tuple[bool, int, int, int] | None:
        """The frame at ``p``: (fin, opcode, header bytes, payload bytes), or None when it
        is not whole yet. Control frames are taken here (ping, close)."""
        head = _frame_header(buf, p, end, self.rsv_ok)
        if head is None:
            return None
        fin, op, hdr, n = head
        if op >= OP_CLOSE and (n > MAX_CONTROL or not fin):
            raise FrameBroken("control frame over 125 bytes or fragmented")
        if n > self.max_frame:
            raise FrameBroken(f"frame of {n} bytes over max-frame {self.max_frame}")
        if p + hdr + n > end:
            return None
        if op >= OP_CLOSE:
            self._control(buf, i, op, buf[p + hdr:p + hdr + n])
        return fin, op, hdr, n

    def _control(self, buf: bytearray, i: int, op: int, payload: bytearray) -> None:
        if op == OP_PING:
            self.pings.append((i, bytes(payload)))
        elif op == OP_CLOSE:
            if len(payload) == 1:
                raise FrameBroken("close frame with a 1-byte payload")
            code = _U16.unpack_from(payload)[0] if payload else 1005  # 1005: none given
            if payload and not wire_close_code(code):
                raise FrameBroken(f"close code {code}, which RFC 6455 forbids on the wire")
            self.closes.append((i, code))

    def _fragments(self, buf: bytearray, i: int, p: int, end: int) -> int | None:
        """The message beginning at ``p`` (a non-final data frame): the raw offset just past
        its final fragment, or None when not all of it is here. Control frames between
        fragments are handled (and later skipped by :meth:`_join`); a message over
        ``max_frame`` breaks the stream. Read-only: ``_join`` or ``_keep_raw`` move bytes."""
        total, q, first = 0, p, True
        while q < end:
            got = self._peek(buf, q, end)
            if got is None:
                return None
            fin, op, hdr, n = got
            if op >= OP_CLOSE:
                q += hdr + n
                continue
            if (op == OP_CONT) == first:
                raise FrameBroken("a new message inside a fragmented one")
            first = False
            total += n
            if total > self.max_frame:
                raise FrameBroken(f"message of {total} bytes over max-frame {self.max_frame}")
            q += hdr + n
            if fin:
                return q
        return None

    def _peek(self, buf: bytearray, q: int, end: int) -> tuple[bool, int, int, int] | None:
        """Like :meth:`_frame`, without taking control frames (a second walk over them)."""
        pings, closes = len(self.pings), len(self.closes)
        got = self._frame(buf, -1, q, end)
        del self.pings[pings:], self.closes[closes:]
        return got

    def _join(self, buf: bytearray, i: int, p: int, done: int, w: int) -> tuple[int, int]:
        """Move the payloads of the fragments in ``buf[p:done]`` to ``w``, taking the
        control frames between them (once). Returns the new write and raw positions."""
        while p < done:
            got = self._frame(buf, i, p, done)
            assert got is not None
            _fin, op, hdr, n = got
            if op < OP_CLOSE:
                buf[w:w + n] = buf[p + hdr:p + hdr + n]
                w += n
            p += hdr + n
        return w, p

    def _keep_raw(self, buf: bytearray, i: int, p: int, end: int, w: int
                  ) -> tuple[int, int, bool]:
        """An unfinished fragmented message: its data frames stay raw (headers and all,
        control frames between them taken now and removed) after the payloads cut, to be
        cut again when the rest arrives."""
        cut = w
        while p < end:
            got = self._frame(buf, i, p, end)
            if got is None:
                break
            _fin, op, hdr, n = got
            if op == OP_CLOSE:
                return cut, cut, False
            if op < OP_CLOSE:
                buf[w:w + hdr + n] = buf[p:p + hdr + n]
                w += hdr + n
            p += hdr + n
        buf[w:w + end - p] = buf[p:end]
        return cut, w + end - p, True



# close codes an endpoint may send (RFC 6455 §7.4, and the IANA registry: 1012-1014):
# 1004, 1005, 1006 and 1015 are reserved or for local use only, 1016-2999 unassigned
WIRE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                              1013, 1014))


def wire_close_code(code: int) -> bool:
    """A close frame may carry ``code`` (else the peer broke the protocol)."""
    return code in WIRE_CLOSE_CODES or 3000 <= code < 5000


def _frame_header(buf: bytearray, p: int, end: int, rsv_ok: int = 0
            ) -> tuple[bool, int, int, int] | None:
    """A server frame's header at ``p``: (fin, opcode, header bytes, payload bytes), or None
    when the header is not whole yet. Raises FrameBroken for what RFC 6455 forbids a server
    (a mask, reserved bits with no extension, an unknown opcode, a 64-bit length with its
    top bit set)."""
    if end - p < 2:
        return None
    b0, b1 = buf[p], buf[p + 1]
    op = b0 & 0x0F
    if b0 & 0x70 & ~rsv_ok:
        raise FrameBroken("reserved bits set (no extension negotiated)")
    if b1 & MASK_BIT:
        raise FrameBroken("masked server frame")
    if op not in OPCODES:
        raise FrameBroken(f"bad opcode {op}")
    n, hdr = b1 & 0x7F, 2
    if n == 126:
        if end - p < 4:
            return None
        n, hdr = _U16.unpack_from(buf, p + 2)[0], 4
    elif n == 127:
        if end - p < 10:
            return None
        n, hdr = _U64.unpack_from(buf, p + 2)[0], 10
        if n >> 63:
            raise FrameBroken("64-bit length with its top bit set")
    return bool(b0 & FIN), op, hdr, n
