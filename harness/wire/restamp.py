"""Restamping a round's sends (harness.wire.hot.send_bounds' ``lag``): one clock read stamps
a round's messages, and its sends go out one after another, so just before each send its
messages' stamps add to their delay (µs) how long after that read it went out. The stamp's
check is linear in each word, so it moves by the delay's weight times the change. Stamped
frames, binary or ASCII, and binary stamps inside masked WebSocket client frames. The pure
half; harness/_hot.c's ``lag_apply`` is the C one."""

from __future__ import annotations

import struct
import time

from harness.wire import stamp

Lag = tuple  # send_bounds' restamping: (hdr, ascii, t0, message size or each message's end
# offset as int64[, ws[, lags]]): each stamp ``hdr`` bytes into its message (ws: into its
# masked client frame's payload); ``lags``, a list: each send's lag (µs) appended to it; a
# ``hdr`` of -1 restamps nothing (the lags alone: in-order protocols keep their stamps)
_U32 = struct.Struct("<I")
_FIVE = struct.Struct("<5I")  # a binary stamp's first five words, the delay last
_DELAY_W = stamp.WEIGHTS_INT[3]  # the delay word's weight in the check


def add_delay(data: memoryview | bytearray, at: int, ascii_: bool, lag: int) -> None:
    """The stamp at ``data[at:]``: its delay (µs) grows by ``lag``, saturating, and its
    check with it (linear in each word: it moves by the delay's weight times the change).
    An ASCII stamp that is not hex is left as it is."""
    if ascii_:
        try:
            old, check = int(bytes(data[at + 32:at + 40]), 16), int(bytes(data[at:at + 8]), 16)
        except ValueError:
            return
    else:
        old, check = _U32.unpack_from(data, at + 16)[0], _U32.unpack_from(data, at)[0]
    now = min(old + lag, 0xFFFFFFFF)
    check = (check + _DELAY_W * (now - old)) & 0xFFFFFFFF
    if ascii_:
        data[at + 32:at + 40] = b"%08x" % now
        data[at:at + 8] = b"%08x" % check
    else:
        _U32.pack_into(data, at + 16, now)
        _U32.pack_into(data, at, check)


def _add_delay_ws(data: memoryview, s: int, b: int, hdr: int, lag: int) -> None:
    """The masked client frame at ``data[s:b]``: the binary stamp ``hdr`` bytes into its
    payload, unmasked, restamped, masked again (when it lies wholly in the frame)."""
    if s + 2 > b or not data[s + 1] & 0x80:
        return
    len7 = data[s + 1] & 0x7F
    head = 2 + (2 if len7 == 126 else 8 if len7 == 127 else 0)
    p = s + head + 4
    if p + hdr + stamp.BIN_SIZE > b:
        return
    mask = bytes(data[s + head:p])
    at = p + hdr
    st = bytearray(x ^ mask[(hdr + j) & 3] for j, x in enumerate(data[at:at + stamp.BIN_SIZE]))
    add_delay(st, 0, False, lag)
    data[at:at + stamp.BIN_SIZE] = bytes(x ^ mask[(hdr + j) & 3] for j, x in enumerate(st))


def _lag_starts(a: int, b: int, ends: list[int], m: list[int]) -> list[int]:
    """Where the messages of ``data[a:b]`` start, by their ``ends``; ``m``: the next
    message's index in ``ends``, carried on from send to send."""
    out = []
    while m[0] < len(ends):
        s = ends[m[0] - 1] if m[0] else 0
        if s >= b:
            break
        if s >= a:
            out.append(s)
        m[0] += 1
    return out


class Restamp:
    """One round's restamping, send by send (its place in the message ends carried on)."""

    __slots__ = ("hdr", "ascii", "t0", "size", "ws", "ends", "m", "lags", "room")

    def __init__(self, lag: Lag) -> None:
        self.hdr, self.ascii, self.t0 = lag[0], lag[1], lag[2]
        self.ws = len(lag) > 4 and bool(lag[4])
        lags = lag[5] if len(lag) > 5 else None
        if self.hdr < 0 and (self.hdr != -1 or lags is None):
            raise ValueError("a stamp offset must not be negative")
        self.lags: list[int] | None = lags
        fixed = self.hdr < 0 or isinstance(lag[3], int)
        self.size = int(lag[3]) if fixed and self.hdr >= 0 else 0
        self.ends = None if fixed else lag[3].tolist()
        self.m = [0]
        self.room = self.hdr + (stamp.ASCII_SIZE if self.ascii else stamp.BIN_SIZE)

    def before_send(self, data: memoryview, a: int, b: int) -> None:
        """``data[a:b]`` goes out now: its messages add their lag, rounded to a µs."""
        ns = time.monotonic_ns() - self.t0
        us = 0 if ns < 500 else min((ns + 500) // 1000, 0xFFFFFFFF)
        if self.lags is not None:
            self.lags.append(us)
        hdr = self.hdr
        if hdr < 0 or (not us and self.ends is None):
            return
        if self.ends is None and not self.ws and not self.ascii:  # the usual: one size
            unpack, pack, w = _FIVE.unpack_from, _FIVE.pack_into, _DELAY_W
            for s in range(a + hdr, b - self.room + hdr + 1, self.size):
                check, c, q, k, old = unpack(data, s)  # check, conn, seq, kind|worker, delay
                now = min(old + us, 0xFFFFFFFF)
                pack(data, s, (check + w * (now - old)) & 0xFFFFFFFF, c, q, k, now)
            return
        starts = (range(a, b, self.size) if self.ends is None else
                  _lag_starts(a, b, self.ends, self.m))
        if not us:
            return
        for s in starts:
            if self.ws:
                _add_delay_ws(data, s, b, hdr, us)
            elif s + self.room <= b:
                add_delay(data, s + hdr, self.ascii, us)
