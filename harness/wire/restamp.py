"""Restamping a round's sends (harness.wire.hot.send_bounds' ``lag``): one clock read stamps
a round's messages, and its sends go out one after another, so just before each send its
messages' stamps add to their delay (µs) how long after that read it went out. The stamp's
check is linear in each word, so it moves by the delay's weight times the change. The pure
half; harness/_hot.c's ``lag_apply`` is the C one."""

from __future__ import annotations

import struct
import time

import numpy as np

from harness.wire import stamp

Lag = tuple[int, bool, int, "int | np.ndarray"]  # send_bounds' restamping: (hdr, ascii, t0,
# message size, or each message's end offset)
_U32 = struct.Struct("<I")
_DELAY_W = stamp.WEIGHTS_INT[3]  # the delay word's weight in the check


def add_delay(data: memoryview, at: int, ascii_: bool, lag: int) -> None:
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


def _lag_starts(lag: Lag, a: int, b: int, ends: list[int] | None, m: list[int]) -> list[int]:
    """Where the messages of ``data[a:b]`` start (their stamps at ``hdr`` past it, whole in
    it); ``m``: the next message's index in ``ends`` (varied sizes), carried on."""
    hdr, ascii_, _t0, size = lag
    room = hdr + (stamp.ASCII_SIZE if ascii_ else stamp.BIN_SIZE)
    if ends is None:
        return list(range(a, b - room + 1, int(size)))
    out = []
    while m[0] < len(ends):
        s = ends[m[0] - 1] if m[0] else 0
        if s >= b:
            break
        if s >= a and s + room <= b:
            out.append(s)
        m[0] += 1
    return out


class Restamp:
    """One round's restamping, send by send (its place in the message ends carried on)."""

    __slots__ = ("lag", "ends", "m")

    def __init__(self, lag: Lag) -> None:
        self.lag = lag
        self.ends = None if isinstance(lag[3], int) else lag[3].tolist()
        self.m = [0]

    def before_send(self, data: memoryview, a: int, b: int) -> None:
        """``data[a:b]`` goes out now: its messages add their lag, rounded to a µs."""
        hdr, ascii_, t0, _size = self.lag
        ns = time.monotonic_ns() - t0
        us = 0 if ns <= 0 else min((ns + 500) // 1000, 0xFFFFFFFF)
        for at in _lag_starts(self.lag, a, b, self.ends, self.m):
            if us:
                add_delay(data, at + hdr, ascii_, us)
