"""harness.wire.framing: encode/cut round trips on a byte stream split every way a socket could
split it, and the max-frame and body limits. Sizes are bytes."""

from __future__ import annotations

import struct

import pytest

from harness.wire import framing
from harness.wire.framing import FrameError, Framing

FRAMINGS = ("newline", "len16", "len32")
BIG = 1 << 20  # a max_frame that no frame here reaches


def bodies(name: str) -> list[bytes]:
    """Bodies of assorted lengths, the empty one included; binary bytes for prefixed
    framings (a newline and NULs inside a len-prefixed body are just data)."""
    if name == "newline":
        return [b"hello", b"", b"a", b"x" * 300, b"tab\tand spaces ", bytes(range(11, 256))]
    return [b"hello", b"", b"\n", b"\x00" * 3, bytes(range(256)), b"y" * 300, b"z"]


def body_of(fr: Framing, frame: bytes) -> bytes:
    """The body inside one whole frame, checking its prefix/trailer on the way."""
    if fr.header:
        fmt = ">H" if fr.header == 2 else ">I"
        (length,) = struct.unpack_from(fmt, frame)
        assert length == len(frame) - fr.header
    else:
        assert frame.endswith(b"\n")
    return frame[fr.header:len(frame) - fr.trailer]


def receive(fr: Framing, chunks: list[bytes], max_frame: int = BIG) -> tuple[list[bytes], bytes]:
    """Feed ``chunks`` the way a receiver does: append to what is pending, cut, keep the
    leftover past the last whole frame. Returns (frames, leftover)."""
    pending = b""
    frames: list[bytes] = []
    for chunk in chunks:
        buf = pending + chunk
        starts, cut = fr.cut(buf, 0, len(buf), max_frame)
        assert starts == sorted(starts)
        assert 0 <= cut <= len(buf)
        if starts:
            assert starts[0] == 0
        else:
            assert cut == 0
        bounds = [*starts, cut]
        frames.extend(buf[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
        pending = buf[cut:]
    return frames, pending


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", FRAMINGS)
def test_encode_sizes_and_single_frame_round_trip(name: str) -> None:
    fr = framing.get(name)
    for body in bodies(name):
        frame = fr.encode(body)
        assert len(frame) == len(body) + fr.overhead()
        starts, cut = fr.cut(frame, 0, len(frame), BIG)
        assert starts == [0]
        assert cut == len(frame)
        assert body_of(fr, frame) == body


@pytest.mark.parametrize("name", FRAMINGS)
def test_whole_stream_in_one_read(name: str) -> None:
    fr = framing.get(name)
    want = bodies(name)
    frames, left = receive(fr, [b"".join(fr.encode(b) for b in want)])
    assert left == b""
    assert [body_of(fr, f) for f in frames] == want


@pytest.mark.parametrize("name", FRAMINGS)
def test_stream_split_in_two_at_every_byte(name: str) -> None:
    fr = framing.get(name)
    want = bodies(name)
    stream = b"".join(fr.encode(b) for b in want)
    for k in range(len(stream) + 1):
        frames, left = receive(fr, [stream[:k], stream[k:]])
        assert left == b"", k
        assert [body_of(fr, f) for f in frames] == want, k


@pytest.mark.parametrize("name", FRAMINGS)
def test_stream_one_byte_at_a_time(name: str) -> None:
    fr = framing.get(name)
    want = bodies(name)
    stream = b"".join(fr.encode(b) for b in want)
    frames, left = receive(fr, [stream[i:i + 1] for i in range(len(stream))])
    assert left == b""
    assert [body_of(fr, f) for f in frames] == want


@pytest.mark.parametrize("name", FRAMINGS)
def test_partial_tail_is_left_pending(name: str) -> None:
    fr = framing.get(name)
    first, second = fr.encode(b"first"), fr.encode(b"second one")
    for k in range(len(second)):  # every strict prefix of the second frame
        frames, left = receive(fr, [first + second[:k]])
        assert frames == [first]
        assert left == second[:k]


@pytest.mark.parametrize("name", FRAMINGS)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_cut_inside_a_window_of_a_larger_buffer(name: str, kind: type) -> None:
    """Offsets are absolute in ``buf``; nothing outside [start, end) is looked at."""
    fr = framing.get(name)
    want = bodies(name)
    stream = b"".join(fr.encode(b) for b in want)
    junk_before = b"\n\xff\xff\xff\xff\n"
    junk_after = fr.encode(b"not mine")[:-1] if name == "newline" else b"\xff" * 8
    raw = junk_before + stream + junk_after
    buf = kind(raw)
    start, end = len(junk_before), len(junk_before) + len(stream)
    starts, cut = fr.cut(buf, start, end, BIG)
    assert cut == end
    bounds = [*starts, cut]
    assert [body_of(fr, raw[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)] == want


@pytest.mark.parametrize("name", FRAMINGS)
def test_empty_window(name: str) -> None:
    fr = framing.get(name)
    assert fr.cut(b"abc", 2, 2, BIG) == ([], 2)


# ---------------------------------------------------------------------------- max_frame


@pytest.mark.parametrize("name", FRAMINGS)
def test_frame_of_exactly_max_frame_is_accepted(name: str) -> None:
    fr = framing.get(name)
    frame = fr.encode(b"q" * 100)
    assert fr.cut(frame, 0, len(frame), len(frame)) == ([0], len(frame))


@pytest.mark.parametrize("name", FRAMINGS)
def test_complete_oversized_frame_raises(name: str) -> None:
    fr = framing.get(name)
    frame = fr.encode(b"q" * 100)
    with pytest.raises(FrameError):
        fr.cut(frame, 0, len(frame), len(frame) - 1)


@pytest.mark.parametrize("name", FRAMINGS)
def test_oversized_frame_after_good_ones_raises(name: str) -> None:
    fr = framing.get(name)
    stream = fr.encode(b"ok") + fr.encode(b"fine") + fr.encode(b"q" * 200)
    with pytest.raises(FrameError):
        fr.cut(stream, 0, len(stream), 64)


@pytest.mark.parametrize("name", ["len16", "len32"])
def test_prefix_announcing_an_oversized_frame_raises_before_the_body(name: str) -> None:
    fr = framing.get(name)
    head = fr.encode(b"q" * 1000)[:fr.header]  # only the prefix has arrived
    with pytest.raises(FrameError):
        fr.cut(head, 0, len(head), 100)
    head_and_some = fr.encode(b"q" * 1000)[:fr.header + 10]
    with pytest.raises(FrameError):
        fr.cut(head_and_some, 0, len(head_and_some), 100)


@pytest.mark.parametrize("name", ["len16", "len32"])
def test_incomplete_prefix_is_pending_not_an_error(name: str) -> None:
    fr = framing.get(name)
    head = fr.encode(b"q" * 1000)[:fr.header - 1]
    assert fr.cut(head, 0, len(head), 100) == ([], 0)


def test_len32_huge_announced_length_raises() -> None:
    head = b"\xff\xff\xff\xff"
    with pytest.raises(FrameError):
        framing.LEN32.cut(head, 0, 4, BIG)


def test_newline_unterminated_line_longer_than_max_frame_raises() -> None:
    fr = framing.NEWLINE
    line = b"w" * 65  # no newline yet, already longer than max_frame
    with pytest.raises(FrameError):
        fr.cut(line, 0, len(line), 64)
    stream = fr.encode(b"ok") + line
    with pytest.raises(FrameError):
        fr.cut(stream, 0, len(stream), 64)


def test_newline_short_unterminated_line_is_pending() -> None:
    fr = framing.NEWLINE
    stream = fr.encode(b"ok") + b"part"
    assert fr.cut(stream, 0, len(stream), 64) == ([0], 3)


# ---------------------------------------------------------------------------- body limits


def test_len16_body_limit() -> None:
    fr = framing.LEN16
    frame = fr.encode(b"m" * 0xFFFF)
    assert frame[:2] == b"\xff\xff"
    assert fr.cut(frame, 0, len(frame), BIG) == ([0], len(frame))
    with pytest.raises(FrameError):
        fr.encode(b"m" * 0x10000)


def test_len32_carries_a_body_over_64k() -> None:
    fr = framing.LEN32
    body = bytes(range(256)) * 300
    frame = fr.encode(body)
    assert fr.cut(frame, 0, len(frame), BIG) == ([0], len(frame))
    assert body_of(fr, frame) == body


@pytest.mark.parametrize("body", [b"\n", b"a\nb", b"\nlead", b"trail\n"])
def test_newline_refuses_a_body_with_a_newline(body: bytes) -> None:
    with pytest.raises(FrameError):
        framing.NEWLINE.encode(body)


def test_frame_error_is_a_value_error_and_get_refuses_unknown_names() -> None:
    assert issubclass(FrameError, ValueError)
    assert framing.get("len32") is framing.LEN32
    with pytest.raises(ValueError, match="bogus"):
        framing.get("bogus")
