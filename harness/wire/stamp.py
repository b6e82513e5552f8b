"""The stamp every message carries, encoded and decoded in batches with numpy.

Fields (all integers):

* ``conn``   global connection id of the sender (u32)
* ``seq``    message number, dense from 0 within the sending worker (u32)
* ``kind``   message kind index, for mixes (u16)
* ``worker`` sending worker index (u16)
* ``delay``  actual send time minus intended send time, µs, saturating (u32)
* ``t``      intended send time, ns of ``time.monotonic_ns()`` (u64)
* ``check``  a weighted sum of all of the above and a per-run key: a mangled stamp fails it

Binary layout (length-prefixed framing): 28 bytes little-endian, right after the prefix.
ASCII layout (newline framing): 56 lowercase hex digits, fixed width, at the start of the
line, so no stray newline can appear.
"""

from __future__ import annotations

import numpy as np

BIN_DTYPE = np.dtype([("check", "<u4"), ("conn", "<u4"), ("seq", "<u4"), ("kind", "<u2"),
                      ("worker", "<u2"), ("delay", "<u4"), ("t", "<u8")])
BIN_SIZE = BIN_DTYPE.itemsize  # 28

# ASCII: (field, hex digits) in order
ASCII_FIELDS = (("check", 8), ("conn", 8), ("seq", 8), ("kind", 4), ("worker", 4),
                ("delay", 8), ("t", 16))
ASCII_SIZE = sum(w for _, w in ASCII_FIELDS)  # 56

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_LUT = np.full(256, 255, dtype=np.uint8)
_HEX_LUT[_HEX_DIGITS] = np.arange(16, dtype=np.uint8)

MAX_DELAY_US = 0xFFFFFFFF


def stamp_size(ascii_: bool) -> int:
    return ASCII_SIZE if ascii_ else BIN_SIZE


# The stamp as seven little-endian u32 words: check, conn, seq, kind | worker << 16, delay,
# t low, t high. The check is a weighted sum (mod 2**32) of the other six with odd weights,
# plus the run key: any change to one word changes it. Two numpy operations per batch.
WORDS = 7
_WEIGHTS = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646D],
                    dtype=np.uint32)
WEIGHTS_INT = [int(x) for x in _WEIGHTS]  # the same, as Python ints (checks in plain Python)


def check_words(words: np.ndarray, key: int) -> np.ndarray:
    """The check of each row of an (n, 7) u32 array (column 0, the check itself, is ignored)."""
    # uint32 matmul wraps mod 2**32: the same as the weighted sum, 4-5x faster than sum(axis=1)
    return (words[:, 1:] @ _WEIGHTS) + np.uint32(key & 0xFFFFFFFF)


def words_of(st: np.ndarray) -> np.ndarray:
    """An (n, 7) u32 view of contiguous stamps."""
    return st.view(np.uint32).reshape(len(st), WORDS)


def make(conn, seq, kind, worker, delay, t, key: int) -> np.ndarray:
    """A structured array of stamps (BIN_DTYPE), check filled in."""
    n = len(seq)
    st = np.empty(n, dtype=BIN_DTYPE)
    st["conn"] = conn
    st["seq"] = seq
    st["kind"] = kind
    st["worker"] = worker
    st["delay"] = delay
    st["t"] = t
    w = words_of(st)
    w[:, 0] = check_words(w, key)
    return st


def to_bytes(st: np.ndarray, ascii_: bool) -> np.ndarray:
    """Stamps as an (n, stamp_size) uint8 array, binary or ASCII hex."""
    if not ascii_:
        return st.view(np.uint8).reshape(len(st), BIN_SIZE)
    out = np.empty((len(st), ASCII_SIZE), dtype=np.uint8)
    col = 0
    for name, width in ASCII_FIELDS:
        v = st[name].astype(np.uint64)
        for j in range(width):
            shift = np.uint64(4 * (width - 1 - j))
            out[:, col + j] = _HEX_DIGITS[((v >> shift) & np.uint64(15)).astype(np.intp)]
        col += width
    return out


_ASCII_WEIGHTS = {w: (np.uint64(16) ** np.arange(w - 1, -1, -1, dtype=np.uint64)) for w in
                  {w for _, w in ASCII_FIELDS}}


def from_bytes(raw: np.ndarray, ascii_: bool, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode an (n, stamp_size) uint8 array; return (stamps, ok mask)."""
    n = raw.shape[0]
    if not ascii_:
        st = np.ascontiguousarray(raw).view(BIN_DTYPE).reshape(n)
        w = words_of(st)
        return st, check_words(w, key) == w[:, 0]
    else:
        digits = _HEX_LUT[raw]
        ok = (digits != 255).all(axis=1)
        digits = digits.astype(np.uint64)
        st = np.empty(n, dtype=BIN_DTYPE)
        col = 0
        for name, width in ASCII_FIELDS:
            vals = (digits[:, col:col + width] * _ASCII_WEIGHTS[width]).sum(axis=1)
            st[name] = vals  # out-of-range values wrap, and then fail the check
            col += width
    w = words_of(st)
    ok &= check_words(w, key) == w[:, 0]
    return st, ok
