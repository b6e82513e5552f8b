"""Message framing on a byte stream: newline, len16, len32.

A frame's *size* is every byte it takes on the wire: the length prefix (big-endian, counting
the body only), the body, and for newline framing the trailing ``\\n``. ``--size`` is that
figure. Sizes are in bytes.

Two ways to cut a stream:

* :meth:`Framing.cut` finds where the last complete frame ends in ``buf[start:end]``
  and returns the frame start offsets (the slow, general walk, used for variable sizes
  and by servers);
* the worker's batch parser (``harness.wire.batch``) does the same over a whole select round
  with numpy when every frame has the same size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


class FrameError(ValueError):
    """A frame broke the protocol: longer than ``max_frame``, or a malformed prefix.

    From :meth:`Framing.cut`, ``starts`` and ``pos`` are the whole frames before the bad
    one (their starts, and the offset just past them), so a reader can keep them."""

    def __init__(self, message: str, starts: list[int] | None = None, pos: int = 0) -> None:
        super().__init__(message)
        self.starts = starts or []
        self.pos = pos


@dataclass(frozen=True, slots=True)
class Framing:
    name: str
    header: int  # bytes of length prefix before the body
    trailer: int  # bytes after the body (1 for newline)
    max_body: int  # the largest body the prefix can express

    def overhead(self) -> int:
        return self.header + self.trailer

    def encode(self, body: bytes) -> bytes:
        """One frame around ``body`` (no stamp logic here)."""
        if len(body) > self.max_body:
            raise FrameError(f"{self.name}: body of {len(body)} bytes exceeds {self.max_body}")
        if self.name == "newline":
            if b"\n" in body:
                raise FrameError("newline: body contains a newline")
            return body + b"\n"
        if self.header == 2:
            return struct.pack(">H", len(body)) + body
        return struct.pack(">I", len(body)) + body

    def cut(self, buf: bytes | bytearray | memoryview, start: int, end: int,
            max_frame: int) -> tuple[list[int], int]:
        """Frame starts in ``buf[start:end]`` and the offset just past the last whole frame.

        Raises FrameError when a frame (whole or announced) is longer than ``max_frame``.
        """
        if self.name == "newline":
            return _cut_newline(buf, start, end, max_frame)
        return _cut_prefixed(buf, start, end, max_frame, self.header)


def _cut_newline(buf, start: int, end: int, max_frame: int) -> tuple[list[int], int]:
    starts: list[int] = []
    pos = start
    find = buf.find if hasattr(buf, "find") else bytes(buf).find
    while pos < end:
        nl = find(b"\n", pos, end)
        if nl < 0:
            break
        if nl + 1 - pos > max_frame:
            raise FrameError(f"newline frame of {nl + 1 - pos} bytes exceeds max-frame "
                             f"{max_frame}", starts, pos)
        starts.append(pos)
        pos = nl + 1
    if end - pos > max_frame:
        raise FrameError(f"unterminated line of {end - pos} bytes exceeds max-frame "
                         f"{max_frame}", starts, pos)
    return starts, pos


_PREFIX = {2: struct.Struct(">H"), 4: struct.Struct(">I")}


def _cut_prefixed(buf, start: int, end: int, max_frame: int,
                  header: int) -> tuple[list[int], int]:
    unpack = _PREFIX[header].unpack_from
    starts: list[int] = []
    pos = start
    while pos + header <= end:
        (length,) = unpack(buf, pos)
        size = header + length
        if size > max_frame:
            raise FrameError(f"frame of {size} bytes exceeds max-frame {max_frame}", starts,
                             pos)
        if pos + size > end:
            break
        starts.append(pos)
        pos += size
    return starts, pos


NEWLINE = Framing("newline", 0, 1, 1 << 30)
LEN16 = Framing("len16", 2, 0, 0xFFFF)
LEN32 = Framing("len32", 4, 0, 0xFFFFFFFF)
FRAMINGS = {f.name: f for f in (NEWLINE, LEN16, LEN32)}


def get(name: str) -> Framing:
    try:
        return FRAMINGS[name]
    except KeyError:
        raise ValueError(f"unknown framing {name!r} (choose from {', '.join(FRAMINGS)})") from None
