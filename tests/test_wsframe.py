"""harness.protocols.ws.wsframe against the websockets library's own frame code: frames
serialised by websockets, split anywhere, cut by the Deframer; masked frames built by
mask_frames, parsed by websockets' reader."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from harness.protocols.ws.wsframe import Deframer, encode_frame, mask_frames
from harness.protocols.ws.wsserver import client_messages, echo_frames

MESSAGES = st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=12)


def server_stream(messages: list[bytes], frag: list[int], pings: list[bool],
                  uniform: bool = False) -> tuple[bytes, list[bytes]]:
    """The bytes a server sends: each message in ``frag[k]`` fragments, a ping between
    fragments when asked; and the pings' payloads in order."""
    out, sent_pings = [], []
    for k, m in enumerate(messages):
        parts = max(1, min(frag[k % len(frag)], len(m) or 1)) if not uniform else 1
        cuts = [len(m) * j // parts for j in range(parts + 1)]
        for j in range(parts):
            op = Opcode.BINARY if j == 0 else Opcode.CONT
            out.append(Frame(op, m[cuts[j]:cuts[j + 1]], fin=j == parts - 1).serialize(
                mask=False))
            if pings[(k + j) % len(pings)] and j < parts - 1:
                payload = f"p{k}.{j}".encode()
                sent_pings.append(payload)
                out.append(Frame(Opcode.PING, payload).serialize(mask=False))
    return b"".join(out), sent_pings


def cut_all(stream: bytes, splits: list[int], max_frame: int = 1 << 20
            ) -> tuple[list[bytes], Deframer, bool]:
    """Feed ``stream`` in pieces as the transport does (pending bytes, then the read, at an
    offset in a bigger buffer); the messages cut, the deframer, and whether all went well."""
    d = Deframer(max_frame)
    got: list[bytes] = []
    pend, pos = b"", 0
    bounds = sorted({min(s, len(stream)) for s in splits} | {len(stream)})
    for b in bounds:
        chunk = stream[pos:b]
        pos = b
        buf = bytearray(b"\xee" * 7) + bytearray(pend + chunk) + bytearray(64)
        walk: list[int] = []
        cut, keep, ok = d.cut(buf, 0, 7, 7 + len(pend) + len(chunk), walk)
        ends = walk[1:] + [cut] if walk else []
        got += [bytes(buf[a:e]) for a, e in zip(walk, ends, strict=True)]
        if not ok:
            return got, d, False
        pend = bytes(buf[cut:keep])
    return got, d, pend == b""


@settings(max_examples=300, deadline=None)
@given(MESSAGES, st.lists(st.integers(1, 4), min_size=1, max_size=5),
       st.lists(st.booleans(), min_size=1, max_size=5),
       st.lists(st.integers(0, 4000), max_size=8))
def test_frames_serialised_by_websockets_are_cut_back_into_the_messages(
        messages, frag, pings, splits):
    stream, sent_pings = server_stream(messages, frag, pings)
    got, d, clean = cut_all(stream, splits)
    assert clean
    assert got == [m for m in messages if m]  # an empty message is not walked: counted
    assert len(d.empty) == messages.count(b"")
    assert [p for _, p in d.pings] == sent_pings


@settings(max_examples=100, deadline=None)
@given(st.integers(28, 125), st.integers(1, 40), st.lists(st.integers(0, 6000), max_size=6))
def test_uniform_frames_take_the_fast_path_and_come_out_whole(size, n, splits):
    rng = np.random.default_rng(size * 1000 + n)
    messages = [rng.bytes(size) for _ in range(n)]
    stream, _ = server_stream(messages, [1], [False], uniform=True)
    got, _, clean = cut_all(stream, splits)
    assert clean and got == messages


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 20), st.sampled_from(["ping", "size", "text"]))
def test_a_frame_unlike_the_run_before_it_ends_the_fast_path_exactly_there(at, odd):
    # 24 frames of 40 bytes, the frame at ``at`` unlike the others (a ping between them, a
    # message one byte longer, a text frame): every message comes out, in order, the ping too
    size = 40
    messages = [bytes([k]) * size for k in range(24)]
    parts = [Frame(Opcode.BINARY, m).serialize(mask=False) for m in messages]
    if odd == "ping":
        parts.insert(at, Frame(Opcode.PING, b"p").serialize(mask=False))
    elif odd == "size":
        messages[at] += b"+"
        parts[at] = Frame(Opcode.BINARY, messages[at]).serialize(mask=False)
    else:
        messages[at] = b"t" * size
        parts[at] = Frame(Opcode.TEXT, messages[at]).serialize(mask=False)
    got, d, clean = cut_all(b"".join(parts), [])
    assert clean and got == messages
    assert [p for _, p in d.pings] == ([b"p"] if odd == "ping" else [])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 20), st.sampled_from(["ping", "size", "text"]))
def test_the_ws_targets_take_a_run_with_an_unlike_frame_in_order(at, odd):
    # the server side (targets/wsecho.py, wschat.py): 24 masked client frames of 40 bytes,
    # one unlike the others at ``at``: every message echoed (taken) unmasked, in order, the
    # ping answered
    messages = [bytes([k]) * 40 for k in range(24)]
    ops = [2] * 24
    if odd == "size":
        messages[at] += b"+"
    elif odd == "text":
        messages[at], ops[at] = b"t" * 40, 1
    parts = [encode_frame(op, m, mask=True) for op, m in zip(ops, messages, strict=True)]
    if odd == "ping":
        parts.insert(at, encode_frame(9, b"p", mask=True))
    data = b"".join(parts)
    reply, used, closing = echo_frames(data, 1 << 20)
    assert used == len(data) and not closing
    got, _, clean = cut_all(reply, [])
    assert clean and got == messages
    assert (encode_frame(10, b"p", mask=False) in reply) == (odd == "ping")
    payloads, ends, ctrl, used, closing = client_messages(data, 1 << 20)  # the chat target's
    assert used == len(data) and not closing
    assert [payloads[a:e] for a, e in zip([0, *ends[:-1]], ends, strict=True)] == messages
    assert ctrl == (encode_frame(10, b"p", mask=False) if odd == "ping" else b"")


def test_a_long_message_with_a_64_bit_length_is_cut():
    m = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length field
    stream = Frame(Opcode.BINARY, m).serialize(mask=False)
    got, _, clean = cut_all(stream, [1000, 30000, 70000])
    assert clean and got == [m]


def test_a_close_frame_ends_the_stream_with_its_code():
    stream = Frame(Opcode.BINARY, b"x" * 40).serialize(mask=False) + \
        Frame(Opcode.CLOSE, Close(1001, "going away").serialize()).serialize(mask=False)
    got, d, clean = cut_all(stream, [])
    assert got == [b"x" * 40] and not clean
    assert d.closes == [(0, 1001)]


def broken(stream: bytes, max_frame: int = 1 << 20) -> bool:
    d = Deframer(max_frame)
    buf = bytearray(stream) + bytearray(16)
    walk: list[int] = []
    cut, keep, ok = d.cut(buf, 0, 0, len(stream), walk)
    return not ok and cut == keep


def test_a_masked_server_frame_breaks_the_stream():
    assert broken(encode_frame(2, b"x" * 30, mask=True))


def test_a_64_bit_length_with_the_top_bit_set_breaks_the_stream_at_once():
    assert broken(bytes((0x82, 127)) + (1 << 63).to_bytes(8, "big"))


def test_a_control_frame_over_125_bytes_breaks_the_stream():
    assert broken(bytes((0x89, 126)) + (126).to_bytes(2, "big") + b"p" * 126)


def test_a_bad_opcode_breaks_the_stream():
    assert broken(bytes((0x83, 3)) + b"abc")


def test_a_frame_over_max_frame_breaks_the_stream_before_it_arrives():
    assert broken(bytes((0x82, 127)) + (10 << 20).to_bytes(8, "big"), max_frame=1 << 20)


def test_a_fragmented_message_over_max_frame_breaks_the_stream():
    stream = b"".join(Frame(Opcode.BINARY if j == 0 else Opcode.CONT, b"y" * 100,
                            fin=j == 3).serialize(mask=False) for j in range(4))
    assert broken(stream, max_frame=300)
    assert not broken(stream, max_frame=400)


def test_a_continuation_without_a_message_breaks_the_stream():
    assert broken(Frame(Opcode.CONT, b"abc").serialize(mask=False))


def parse_client(data: bytes, count: int) -> list[Frame]:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    for _ in range(count):
        gen = Frame.parse(reader.read_exact, mask=True, max_size=None)
        try:
            next(gen)
        except StopIteration as stop:
            frames.append(stop.value)
            continue
        raise AssertionError("incomplete frame")
    assert not reader.buffer  # nothing left over
    return frames


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=400), min_size=1, max_size=10))
def test_masked_frames_are_read_back_by_websockets(messages):
    data = b"".join(messages)
    ends = np.cumsum([len(m) for m in messages])
    out, fend = mask_frames(memoryview(data), ends)
    frames = parse_client(bytes(out), len(messages))
    assert [f.data for f in frames] == messages
    assert all(f.opcode == Opcode.BINARY and f.fin for f in frames)
    assert fend[-1] == len(out)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 125), st.integers(1, 30))
def test_uniform_masked_frames_are_read_back_by_websockets(size, n):
    rng = np.random.default_rng(size + 7 * n)
    messages = [rng.bytes(size) for _ in range(n)]
    out, fend = mask_frames(memoryview(b"".join(messages)), np.arange(1, n + 1) * size)
    assert [f.data for f in parse_client(bytes(out), len(messages))] == messages
    assert list(fend) == [(k + 1) * (size + 6) for k in range(n)]


def test_long_masked_frames_are_read_back_by_websockets():
    messages = [b"a" * 70000, b"b" * 300, b"c" * 5]
    out, _ = mask_frames(memoryview(b"".join(messages)), np.cumsum([70000, 300, 5]))
    assert [f.data for f in parse_client(bytes(out), len(messages))] == messages


def test_each_frame_has_its_own_mask():
    out, _ = mask_frames(memoryview(b"\0" * 64 * 8), np.arange(1, 9) * 64)
    frames = np.frombuffer(bytes(out), dtype=np.uint8).reshape(8, 70)
    assert len({bytes(r[2:6]) for r in frames}) == 8


def test_empty_messages_are_counted_apart_and_the_messages_beside_them_cut():
    # six empty messages in a row (the uniform fast path would take them), then two with
    # bytes, then an empty message in three empty fragments
    parts = [Frame(Opcode.BINARY, b"").serialize(mask=False)] * 6
    parts += [Frame(Opcode.BINARY, b"a" * 40).serialize(mask=False),
              Frame(Opcode.TEXT, b"b" * 3).serialize(mask=False),
              Frame(Opcode.BINARY, b"", fin=False).serialize(mask=False),
              Frame(Opcode.CONT, b"", fin=False).serialize(mask=False),
              Frame(Opcode.CONT, b"").serialize(mask=False)]
    got, d, clean = cut_all(b"".join(parts), [5, 13])
    assert clean and got == [b"a" * 40, b"b" * 3]
    assert d.empty == [0] * 7


def test_a_close_code_forbidden_on_the_wire_breaks_the_stream():
    ok_codes = (1000, 1001, 1011, 1012, 1014, 3000, 4999)
    for code in (999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, *ok_codes):
        stream = Frame(Opcode.BINARY, b"m" * 10).serialize(mask=False) + \
            bytes((0x88, 2)) + code.to_bytes(2, "big")
        got, d, clean = cut_all(stream, [])
        assert got == [b"m" * 10] and not clean
        assert d.closes == ([(0, code)] if code in ok_codes else []), code
    got, d, clean = cut_all(bytes((0x88, 0)), [])  # no code at all: 1005, as RFC 6455 says
    assert d.closes == [(0, 1005)] and not clean
