"""harness.wire.stamp and harness.wire.batch with synthetic arrays: stamps survive encode/decode in
both layouts, any mangled byte fails the check, and a round buffer built by Outbound parses
back in Inbound with every field intact. Times ns, sizes bytes."""

from __future__ import annotations

import numpy as np
import pytest

from harness.wire import framing, stamp
from harness.wire.batch import Outbound
from harness.wire.framing import Framing
from harness.wire.inbound import Inbound
from workloads.base import Kind

KEY = 0x1234ABCD
WORKER = 3
FRAMINGS = ("newline", "len16", "len32")
MAX_FRAME = 1 << 16
T0 = 1_700_000_000_123_456_789  # ns, a plausible monotonic_ns far from 0


def sample_stamps(key: int = KEY) -> np.ndarray:
    """Stamps covering every field's extremes."""
    conn = np.array([0, 1, 0xFFFFFFFF, 12345, 7, 0x80000000], dtype=np.uint32)
    seq = np.array([0, 0xFFFFFFFF, 1, 99, 2**31, 42], dtype=np.uint32)
    kind = np.array([0, 0xFFFF, 1, 2, 3, 0x8000], dtype=np.uint16)
    worker = np.array([0, 0xFFFF, 5, 1, 2, 3], dtype=np.uint16)
    delay = np.array([0, stamp.MAX_DELAY_US, 1, 1000, 5, 0], dtype=np.uint32)
    t = np.array([0, 2**64 - 1, 1, T0, 2**32, 2**32 - 1], dtype=np.uint64)
    return stamp.make(conn, seq, kind, worker, delay, t, key)


FIELDS = ("conn", "seq", "kind", "worker", "delay", "t", "check")


def assert_same_stamps(got: np.ndarray, want: np.ndarray) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


# ---------------------------------------------------------------------------- stamp


@pytest.mark.parametrize("ascii_", [False, True], ids=["binary", "ascii"])
def test_stamp_round_trip(ascii_: bool) -> None:
    st = sample_stamps()
    raw = stamp.to_bytes(st, ascii_)
    assert raw.dtype == np.uint8
    assert raw.shape == (len(st), stamp.stamp_size(ascii_))
    back, ok = stamp.from_bytes(raw.copy(), ascii_, KEY)
    assert ok.all()
    assert_same_stamps(back, st)


def test_stamp_sizes() -> None:
    assert stamp.stamp_size(False) == stamp.BIN_SIZE == 28
    assert stamp.stamp_size(True) == stamp.ASCII_SIZE == 56


def test_ascii_stamp_is_lowercase_hex_only() -> None:
    raw = stamp.to_bytes(sample_stamps(), True)
    allowed = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    assert np.isin(raw, allowed).all()
    assert not (raw == ord("\n")).any()


def test_ascii_stamp_reads_as_fixed_width_hex() -> None:
    st = stamp.make([0xABC], [5], [1], [2], [3], [T0], KEY)
    text = stamp.to_bytes(st, True).tobytes().decode()
    assert text[8:16] == "00000abc"  # conn
    assert text[16:24] == "00000005"  # seq
    assert int(text[40:56], 16) == T0  # t


@pytest.mark.parametrize("ascii_", [False, True], ids=["binary", "ascii"])
def test_wrong_key_fails_the_check(ascii_: bool) -> None:
    raw = stamp.to_bytes(sample_stamps(), ascii_)
    _, ok = stamp.from_bytes(raw.copy(), ascii_, KEY ^ 1)
    assert not ok.any()


def _flip_each_position(raw: np.ndarray, replace) -> tuple[np.ndarray, np.ndarray]:
    """Every (stamp, byte position) pair as one row: the stamp with that one byte replaced.
    Returns (rows, changed position per row)."""
    n, width = raw.shape
    rows = np.repeat(raw, width, axis=0)  # stamp j repeated width times
    pos = np.tile(np.arange(width), n)
    idx = np.arange(len(rows))
    rows[idx, pos] = replace(rows[idx, pos])
    assert (rows != np.repeat(raw, width, axis=0)).sum(axis=1).tolist() == [1] * len(rows)
    return rows, pos


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF, 0x10])
def test_binary_any_flipped_byte_fails_the_check(mask: int) -> None:
    raw = stamp.to_bytes(sample_stamps(), False)
    rows, _ = _flip_each_position(raw, lambda b: b ^ np.uint8(mask))
    _, ok = stamp.from_bytes(rows, False, KEY)
    assert not ok.any(), np.flatnonzero(ok)
    _, ok_clean = stamp.from_bytes(raw.copy(), False, KEY)
    assert ok_clean.all()


HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
NEXT_HEX = np.zeros(256, dtype=np.uint8)
NEXT_HEX[HEX] = np.roll(HEX, -1)  # '0'->'1', ..., 'f'->'0'


@pytest.mark.parametrize("replace", [
    lambda b: NEXT_HEX[b],  # still a hex digit, different value
    lambda b: NEXT_HEX[NEXT_HEX[NEXT_HEX[b]]],
    lambda b: np.full_like(b, ord("g")),  # not hex
    lambda b: np.full_like(b, ord("\n")),
    lambda b: np.where(b >= ord("a"), b - 32, ord("A")).astype(np.uint8),  # uppercase / 'A'
    lambda b: b ^ np.uint8(0x80),
], ids=["next-digit", "digit+3", "g", "newline", "uppercase", "high-bit"])
def test_ascii_any_changed_byte_fails_the_check(replace) -> None:
    raw = stamp.to_bytes(sample_stamps(), True)
    rows, _ = _flip_each_position(raw, replace)
    _, ok = stamp.from_bytes(rows, True, KEY)
    assert not ok.any(), np.flatnonzero(ok)


def test_a_bad_stamp_does_not_spoil_its_neighbours() -> None:
    for ascii_ in (False, True):
        raw = stamp.to_bytes(sample_stamps(), ascii_).copy()
        raw[2, 9] ^= 0x01
        _, ok = stamp.from_bytes(raw, ascii_, KEY)
        assert ok.tolist() == [True, True, False, True, True, True]


# ---------------------------------------------------------------------------- batch helpers


def filler(size: int) -> bytes:
    """What a workload's filler looks like: ``size`` bytes without a newline."""
    return (b"filler-" * (size // 7 + 1))[:size]


def outbound(fr: Framing, sizes: list[int], seed: int = 11) -> Outbound:
    kinds = [Kind(f"k{i}", 1.0, sz) for i, sz in enumerate(sizes)]
    return Outbound(fr, kinds, [filler(s) for s in sizes], KEY, WORKER, seed)


def segments(gid: np.ndarray, ends: np.ndarray, local: dict[int, int]) -> tuple[
        list[int], list[int], list[int]]:
    """One socket read per run of equal gids (an echo comes back on its own connection):
    the (local connection, end offset, receive time) lists Inbound.parse takes."""
    seg_conn, seg_end, seg_t = [], [], []
    for i in range(len(gid)):
        if i + 1 == len(gid) or gid[i + 1] != gid[i]:
            seg_conn.append(local[int(gid[i])])
            seg_end.append(int(ends[i]))
            seg_t.append(T0 + 1_000_000 + 17 * len(seg_t))
    return seg_conn, seg_end, seg_t


def walk(fr: Framing, buf: bytearray, seg_end: list[int]) -> list[int]:
    """Frame starts as the worker collects them: Framing.cut per socket read."""
    starts: list[int] = []
    prev = 0
    for end in seg_end:
        s, cut = fr.cut(buf, prev, end, MAX_FRAME)
        assert cut == end
        starts.extend(s)
        prev = end
    return starts


def expected_per_frame(seg_conn: list[int], seg_end: list[int], seg_t: list[int],
                       ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seg = np.searchsorted(np.asarray(seg_end), ends, side="left")
    return np.asarray(seg_conn)[seg], np.asarray(seg_t)[seg]


GID = np.array([4, 4, 4, 9, 2, 2, 2, 2, 2, 0, 7, 7], dtype=np.int64)
LOCAL = {4: 0, 9: 1, 2: 2, 0: 3, 7: 4}  # gid -> the worker's local connection index


def round_trip(fr: Framing, sizes: list[int], gid: np.ndarray, fixed_size: int | None,
               seq0: int = 1000, local: dict[int, int] | None = None):
    """Build, parse back, and check every field; returns (data, kinds)."""
    out = outbound(fr, sizes)
    t = T0 + np.arange(len(gid), dtype=np.int64) * 1_000
    delay = np.arange(len(gid), dtype=np.int64) % 5
    data, ends, kinds = out.build(gid, seq0, t, delay)
    assert ends[-1] == len(data)
    assert len(kinds) == len(gid)
    np.testing.assert_array_equal(np.diff(ends, prepend=0), np.asarray(sizes)[kinds])
    buf = bytearray(bytes(data)) + bytearray(b"\xee" * 64)  # the round buffer is larger
    seg_conn, seg_end, seg_t = segments(gid, ends, local or LOCAL)
    starts = None if (fixed_size or fr.name == "newline") else walk(fr, buf, seg_end)
    inbound = Inbound(fr, fixed_size, MAX_FRAME, KEY)
    parsed = inbound.parse(buf, seg_conn, seg_end, seg_t, starts)
    want_conn, want_t = expected_per_frame(seg_conn, seg_end, seg_t, ends)
    assert parsed.bad_conns == []
    assert parsed.ok.all()
    np.testing.assert_array_equal(parsed.conn, want_conn)
    np.testing.assert_array_equal(parsed.t, want_t)
    np.testing.assert_array_equal(parsed.flen, np.asarray(sizes)[kinds])
    np.testing.assert_array_equal(parsed.st["conn"], gid)
    np.testing.assert_array_equal(parsed.st["seq"], seq0 + np.arange(len(gid)))
    np.testing.assert_array_equal(parsed.st["t"], t)
    np.testing.assert_array_equal(parsed.st["delay"], delay)
    np.testing.assert_array_equal(parsed.st["kind"], kinds)
    np.testing.assert_array_equal(parsed.st["worker"], WORKER)
    return data, kinds


# ---------------------------------------------------------------------------- batch


@pytest.mark.parametrize("name", FRAMINGS)
def test_outbound_frames_are_well_formed(name: str) -> None:
    fr = framing.get(name)
    size = 100
    data, ends, _ = outbound(fr, [size]).build(GID, 0, T0, 0)
    raw = bytes(data)
    assert len(raw) == size * len(GID)
    starts, cut = fr.cut(raw, 0, len(raw), MAX_FRAME)
    assert cut == len(raw)
    assert starts == list(range(0, len(raw), size))
    np.testing.assert_array_equal(ends, np.arange(1, len(GID) + 1) * size)
    if name == "newline":
        assert raw.count(b"\n") == len(GID)


@pytest.mark.parametrize("name", FRAMINGS)
def test_fixed_size_round_trip(name: str) -> None:
    fr = framing.get(name)
    size = 96
    round_trip(fr, [size], GID, fixed_size=size)


@pytest.mark.parametrize("name", FRAMINGS)
def test_smallest_size_round_trip(name: str) -> None:
    fr = framing.get(name)
    size = Outbound.stamp_room(fr)
    assert size == fr.overhead() + stamp.stamp_size(name == "newline")
    round_trip(fr, [size], GID, fixed_size=size)


@pytest.mark.parametrize("name", ["len16", "len32"])
def test_fixed_size_frames_parsed_by_the_general_walk(name: str) -> None:
    """The same buffer without the fast path: starts from Framing.cut."""
    round_trip(framing.get(name), [64], GID, fixed_size=None)


@pytest.mark.parametrize("name", FRAMINGS)
def test_two_sizes_round_trip(name: str) -> None:
    fr = framing.get(name)
    rng = np.random.default_rng(5)
    gid = np.sort(rng.integers(0, 10, size=60))
    local = {g: g + 100 for g in range(10)}
    _, kinds = round_trip(fr, [70, 300], gid, fixed_size=None, seq0=7, local=local)
    assert set(kinds.tolist()) == {0, 1}  # both sizes really occur


def test_outbound_grows_past_its_first_buffer() -> None:
    fr = framing.LEN32
    out = outbound(fr, [48])
    gid = np.repeat(np.arange(5), 1000)
    data, ends, _ = out.build(gid, 0, T0, 0)
    assert len(data) == 48 * 5000
    inbound = Inbound(fr, 48, MAX_FRAME, KEY)
    seg_end = [int(ends[k * 1000 + 999]) for k in range(5)]
    parsed = inbound.parse(bytearray(bytes(data)), list(range(5)), seg_end, [T0] * 5, None)
    assert parsed.ok.all()
    np.testing.assert_array_equal(parsed.st["seq"], np.arange(5000))
    np.testing.assert_array_equal(parsed.conn, gid)


def test_second_build_reuses_the_buffer_with_fresh_stamps() -> None:
    fr = framing.NEWLINE
    out = outbound(fr, [80])
    first = bytes(out.build(GID, 0, T0, 0)[0])
    second = bytes(out.build(GID, len(GID), T0 + 5, 0)[0])
    assert first != second
    parsed = Inbound(fr, None, MAX_FRAME, KEY).parse(
        bytearray(second), [0], [len(second)], [T0], None)
    assert parsed.ok.all()
    np.testing.assert_array_equal(parsed.st["seq"], np.arange(len(GID), 2 * len(GID)))
    np.testing.assert_array_equal(parsed.st["t"], T0 + 5)


def test_wrong_key_on_receive_marks_frames_not_ok() -> None:
    fr = framing.LEN32
    data, ends, _ = outbound(fr, [64]).build(GID, 0, T0, 0)
    parsed = Inbound(fr, 64, MAX_FRAME, KEY + 1).parse(
        bytearray(bytes(data)), [0], [int(ends[-1])], [T0], None)
    assert not parsed.ok.any()
    assert parsed.bad_conns == []


@pytest.mark.parametrize("name", FRAMINGS)
def test_frame_too_short_for_a_stamp_is_not_ok(name: str) -> None:
    fr = framing.get(name)
    good = bytes(outbound(fr, [64]).build(np.array([1]), 0, T0, 0)[0])
    short = fr.encode(b"hi")
    buf = bytearray(good + short + good)
    starts = None if name == "newline" else walk(fr, buf, [len(buf)])
    parsed = Inbound(fr, None, MAX_FRAME, KEY).parse(buf, [0], [len(buf)], [T0], starts)
    assert parsed.ok.tolist() == [True, False, True]


@pytest.mark.parametrize("name", ["len16", "len32"])
def test_fixed_size_corrupted_prefix_reports_the_connection(name: str) -> None:
    fr = framing.get(name)
    size = 64
    gid = np.repeat(np.arange(3), 4)  # 3 connections x 4 frames, one read each
    data, ends, _ = outbound(fr, [size]).build(gid, 0, T0, 0)
    buf = bytearray(bytes(data))
    bad_frame = 6  # connection 1's third frame
    buf[bad_frame * size:bad_frame * size + fr.header] = b"\xff" * fr.header
    seg_end = [int(ends[3]), int(ends[7]), int(ends[11])]
    parsed = Inbound(fr, size, MAX_FRAME, KEY).parse(buf, [0, 1, 2], seg_end,
                                                     [T0, T0 + 1, T0 + 2], None)
    assert parsed.bad_conns == [1]
    kept = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]  # frames before the bad one; others untouched
    np.testing.assert_array_equal(parsed.st["seq"], kept)
    np.testing.assert_array_equal(parsed.conn, gid[kept])
    np.testing.assert_array_equal(parsed.t, T0 + gid[kept])
    assert parsed.ok.all()
    assert len(parsed.flen) == len(kept)


def test_fixed_size_corrupted_first_frame_keeps_nothing_of_that_connection() -> None:
    fr = framing.LEN32
    size = 40
    gid = np.array([0, 0, 1, 1])
    data, ends, _ = outbound(fr, [size]).build(gid, 0, T0, 0)
    buf = bytearray(bytes(data))
    buf[2 * size] ^= 0x01  # connection 1's first prefix
    parsed = Inbound(fr, size, MAX_FRAME, KEY).parse(buf, [0, 1], [2 * size, 4 * size],
                                                     [T0, T0], None)
    assert parsed.bad_conns == [1]
    np.testing.assert_array_equal(parsed.st["seq"], [0, 1])


def test_newline_line_longer_than_max_frame_is_reported() -> None:
    fr = framing.NEWLINE
    good = bytes(outbound(fr, [64]).build(np.array([1]), 0, T0, 0)[0])
    long_line = fr.encode(b"L" * 200)
    buf = bytearray(good + good + long_line)
    parsed = Inbound(fr, None, 128, KEY).parse(buf, [5, 6], [2 * len(good), len(buf)],
                                               [T0, T0], None)
    assert parsed.bad_conns == [6]
    assert parsed.ok.tolist()[:2] == [True, True]


@pytest.mark.parametrize("name", ["len16", "len32"])
def test_a_small_round_taken_without_arrays_gives_what_numpy_gives(name: str) -> None:
    fr, size = framing.get(name), 64
    gid = np.array([5, 9, 0xFFFFFFFF, 2], dtype=np.int64)
    t = np.array([T0, T0 + 1, 2**64 - 1, 2**32], dtype=np.uint64)
    data, ends, _ = outbound(fr, [size]).build(gid, 2**32 - 2, t, np.array([0, 7, 2**32 - 1, 3]))
    buf = bytearray(bytes(data)) + bytearray(64)
    seg_conn, seg_end, seg_t = [3, 1, 0, 2], ends.tolist(), [T0 + k for k in range(4)]
    gids = [0xFFFFFFFF, 9, 2, 5]  # each connection's global id
    inbound = Inbound(fr, size, MAX_FRAME, KEY)
    few = inbound.take_few(buf, seg_conn, seg_end, seg_t, WORKER, gids)
    p = inbound.parse(buf, seg_conn, seg_end, seg_t, None)
    assert few is not None and p.ok.all()
    conn, tr, seqs, tint, delay = few
    assert conn is seg_conn and tr is seg_t  # one frame a read: the reads' own lists
    assert seqs == p.st["seq"].tolist() and tint == p.st["t"].tolist()
    assert delay == p.st["delay"].tolist()
    # a connection's frames two in a read
    data2, ends2, _ = outbound(fr, [size]).build(np.array([5, 5, 9, 9]), 2**32 - 2, t,
                                                 np.array([0, 7, 2**32 - 1, 3]))
    buf2, reads = bytearray(bytes(data2)), [T0, T0, T0 + 2, T0 + 2]
    p2 = inbound.parse(buf2, [3, 3, 1, 1], ends2.tolist(), reads, None)
    few2 = inbound.take_few(buf2, [3, 1], ends2.tolist()[1::2], [T0, T0 + 2], WORKER, gids)
    assert few2 is not None and p2.ok.all()
    assert few2[0] == [3, 3, 1, 1] and few2[1] == reads
    assert few2[2:] == (p2.st["seq"].tolist(), p2.st["t"].tolist(), p2.st["delay"].tolist())


def test_a_small_round_with_anything_wrong_is_left_to_numpy() -> None:
    fr, size = framing.LEN32, 64
    data, ends, _ = outbound(fr, [size]).build(np.array([1, 2]), 0, T0, 0)
    good = bytearray(bytes(data))
    inbound = Inbound(fr, size, MAX_FRAME, KEY)
    args = ([0, 1], ends.tolist(), [T0, T0], WORKER, [1, 2])
    assert inbound.take_few(good, *args) is not None
    flipped = bytearray(good)
    flipped[size + 10] ^= 1  # the second frame's stamp: its check fails
    assert inbound.take_few(flipped, *args) is None
    foreign = bytearray(good)
    foreign[size + 3] ^= 1  # the second frame's length prefix is not ours
    assert inbound.take_few(foreign, *args) is None
    assert inbound.take_few(good, [0], [2 * size], [T0], WORKER, [1]) is None  # 2 senders
    assert inbound.take_few(good, [0], [size + 3], [T0], WORKER, [1]) is None  # a part frame
    assert inbound.take_few(good, [1, 0], ends.tolist(), [T0, T0], WORKER, [1, 2]) is None
    assert inbound.take_few(good, *args[:3], WORKER + 1, [1, 2]) is None  # another worker's


@pytest.mark.parametrize("name", ["len16", "len32"])
def test_a_small_closed_loop_round_built_in_python_is_what_numpy_builds(name: str) -> None:
    fr, size = framing.get(name), 64
    gids, counts = [7, 0xFFFFFFFF, 3], [2, 1, 3]
    seq0, t = 2**32 - 3, T0
    want, ends, _ = outbound(fr, [size]).build(np.repeat(gids, counts), seq0, t, 0)
    out = outbound(fr, [size])
    got, bounds, n = out.build_few(gids, counts, seq0, t)
    assert bytes(got) == bytes(want) and n == 6
    assert bounds == ends[np.cumsum(counts) - 1].tolist()
    big = out.build_few([1] * 5, [1000] * 5, 0, t)  # past the buffer: it grows
    assert big[2] == 5000 and bytes(big[0][:size]) == bytes(outbound(fr, [size]).build(
        np.array([1]), 0, t, 0)[0])


@pytest.mark.parametrize("name", ["len16", "len32"])
def test_a_small_open_loop_round_built_in_python_is_what_numpy_builds(name: str) -> None:
    fr, size = framing.get(name), 64
    gids, counts = [7, 0xFFFFFFFF, 3], [2, 1, 3]
    seq0 = 2**32 - 3
    tint = [T0 + k * 1_000_003 for k in range(6)]
    tint[5] = 2**40 + 12345  # a high word too
    delay = [0, 7, 2**32 - 1, 123456, 1, 0]  # µs late, the top of a u32 included
    want, ends, _ = outbound(fr, [size]).build(np.repeat(gids, counts), seq0,
                                               np.array(tint, dtype=np.int64),
                                               np.array(delay, dtype=np.int64))
    got, bounds, n = outbound(fr, [size]).build_few_at(gids, counts, seq0, tint, delay)
    assert bytes(got) == bytes(want) and n == 6
    assert bounds == ends[np.cumsum(counts) - 1].tolist()
