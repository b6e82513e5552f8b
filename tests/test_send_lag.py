"""A round's sends restamp their messages: one clock read stamps a round, and its sends go
out one after another, so each send adds to its messages' delay (µs) how long after that
read it went out (harness.wire.hot.send_bounds' ``lag``), check word and all. Real sockets
on loopback; the pure function and, where built, the C one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from harness.wire import framing, hot, restamp, stamp
from harness.wire.batch import Outbound
from tests import nginx
from tests.support import tcp_pairs
from workloads.base import Kind

KEY, ME = 0x3A11CE5, 2
IMPLS = {"pure": types.SimpleNamespace(send_bounds=hot.py_send_bounds),
         **({"native": hot.native} if hot.native is not None else {})}
LAYOUTS = ("len32", "newline", "varied")


def _round(layout: str, counts: list[int], t: int, delay: int
           ) -> tuple[Outbound, memoryview, np.ndarray]:
    """A round's messages (``counts`` per connection), all intended at ``t`` with ``delay``
    µs: an Outbound's bytes, each message's end."""
    fr = framing.get("newline" if layout == "newline" else "len32")
    size = [64, 100, 200] if layout == "varied" else 64
    out = Outbound(fr, [Kind("k", 1.0, size)], [b"f" * 300], KEY, ME, 7)
    gids = np.repeat(np.arange(len(counts), dtype=np.int64) + 50, counts)
    data, ends, _kinds = out.build(gids, 1000, t, delay)
    return out, data, ends


def _stamps(out: Outbound, got: bytes, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.concatenate(([0], ends[:-1]))
    raw = np.frombuffer(got, dtype=np.uint8)
    rows = np.stack([raw[s + out.hdr:s + out.hdr + out.ss] for s in starts.tolist()])
    return stamp.from_bytes(rows, out.ascii, KEY)


def _send(impl: str, layout: str, counts: list[int], t0: int, delay: int = 5
          ) -> tuple[Outbound, bytes, np.ndarray, int]:
    """Send a round of ``counts`` through ``impl`` with the lag taken from ``t0``: the
    bytes the peers read (in connection order), each message's end, and the clock after."""
    out, data, ends = _round(layout, counts, t0, delay)
    bounds = ends[np.cumsum(counts) - 1].tolist()
    lag = (out.hdr, out.ascii, t0, ends if layout == "varied" else int(ends[0]))
    with tcp_pairs(len(counts)) as (ours, peers):
        fails = IMPLS[impl].send_bounds(ours, list(range(len(counts))), bounds, data, lag)
        after = time.monotonic_ns()
        assert fails == []
        got = b""
        a = 0
        for p, b in zip(peers, bounds, strict=True):
            p.settimeout(2)
            part = b""
            while len(part) < b - a:
                part += p.recv(65536)
            got += part
            a = b
    return out, got, ends, after


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_send_adds_its_lag_to_its_messages_delays(impl: str, layout: str) -> None:
    t0 = time.monotonic_ns() - 3_000_000  # the round's clock read, 3 ms ago
    out, got, ends, after = _send(impl, layout, [1, 3, 1, 2], t0)
    st, ok = _stamps(out, got, ends)
    assert ok.all()  # the checks moved with the delays
    assert (st["t"] == t0).all() and st["seq"].tolist() == list(range(1000, 1007))
    lag = st["delay"].astype(np.int64) - 5
    assert (lag >= 3000).all() and (lag <= (after - t0) // 1000 + 1).all(), lag
    assert (np.diff(lag) >= 0).all()  # sent in order
    for a, b in ((1, 4), (5, 7)):  # one send's messages: one lag
        assert len(set(lag[a:b].tolist())) == 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_both_builds_restamp_alike(layout: str) -> None:
    """The same bytes where the lag is fixed: none (the round's clock read is ahead, so
    nothing changes) or one that saturates the delay."""
    ahead = time.monotonic_ns() + 10**12
    long_ago = 1  # the boot: a lag of minutes at least, on a delay near its top
    seen = {}
    for impl in IMPLS:
        _o, same, _e, _a = _send(impl, layout, [2, 1], ahead)
        _o, full, ends, _a = _send(impl, layout, [2, 1], long_ago,
                                   delay=stamp.MAX_DELAY_US - 10)
        seen[impl] = (same, full)
        assert same == bytes(_round(layout, [2, 1], ahead, 5)[1])
        st, ok = _stamps(_o, full, ends)
        assert ok.all() and (st["delay"] == stamp.MAX_DELAY_US).all()
    assert len(set(seen.values())) == 1


def test_a_stamp_that_is_not_hex_is_left_alone() -> None:
    data = bytearray(b"z" * 56 + b"\n")
    restamp.add_delay(memoryview(data), 0, True, 10)
    assert data == bytearray(b"z" * 56 + b"\n")
    if hot.native is not None:
        with tcp_pairs(1) as (ours, peers):
            hot.native.send_bounds(ours, [0], [57], data, (0, True, 0, 57))
            peers[0].settimeout(2)
            assert peers[0].recv(100) == b"z" * 56 + b"\n"


@pytest.mark.skipif(hot.native is None, reason="harness._hot is not built")
def test_bad_lags_raise() -> None:
    n = hot.native
    with pytest.raises(ValueError):
        n.send_bounds([], [], [], bytearray(4), (0, False, 0, 0))  # no size
    with pytest.raises(ValueError):
        n.send_bounds([], [], [], bytearray(4), (-1, False, 0, 64))
    with pytest.raises(TypeError):
        n.send_bounds([], [], [], bytearray(4), (0, False, 0, np.zeros(2, dtype=np.int32)))
    with pytest.raises(BufferError):
        n.send_bounds([], [], [], b"read-only", (0, False, 0, 64))
    assert n.send_bounds([], [], [], bytearray(4), None) == []


def _p50_ms(tmp: Path, lag: str, *target: str) -> float:
    """A closed loop of 200 connections against ``target`` (``--host URL``; none: the
    embedded echo server), a think time of 2 ms putting them in step (a round sends to
    about half of them): the step's p50."""
    cmd = [sys.executable, "-m", "harness", "run", *target, "--conns", "200", "--think", "0.002",
           "--duration", "1", "--warmup", "0.3", "--workers", "1", "--json", "--no-report",
           "--results-dir", str(tmp / lag)]
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=120, env={**os.environ, "HARNESS_SEND_LAG": lag})
    assert r.returncode in (0, 1, 4), r.stderr
    step = json.loads(r.stdout)["steps"][0]
    assert step["lost"] == 0 and step["received"] > 0
    return float(step["latency_ms"]["p50"])


def _per_send_and_round(tmp: Path, *target: str) -> tuple[float, float]:
    """The p50 with each send's own time and with one time a round (:func:`_p50_ms`), the
    pair run once more when the first is not under 0.7: this VM's p50s move from run to
    run (alone, the ratio read 0.24-0.48 in five runs; once, in a clean-clone run, 0.78).
    Without the per-send lag the ratio is about 1 every time, and fails both."""
    for attempt in ("a", "b"):
        per_round = _p50_ms(tmp / attempt, "0", *target)
        per_send = _p50_ms(tmp / attempt, "1", *target)
        if per_send < 0.7 * per_round:
            break
    return per_send, per_round


@pytest.mark.e2e
@pytest.mark.alone
def test_a_long_send_round_no_longer_adds_to_closed_loop_latency(tmp_path: Path) -> None:
    """Each send's own time, not its round's clock read: quiet, the p50 was 0.60 and
    0.65 ms with one time a round, 0.199 and 0.196 ms restamped (a round's sends go out
    3-5 µs apart, so the last of 100 left some 0.4 ms after the clock read)."""
    per_send, per_round = _per_send_and_round(tmp_path)
    assert per_send < 0.7 * per_round, (per_send, per_round)


def _unmasked_stamps(frames: bytes, hdr: int) -> list[bytes]:
    """The binary stamps, ``hdr`` bytes into each masked client frame's payload."""
    out, s = [], 0
    while s < len(frames):
        len7 = frames[s + 1] & 0x7F
        head = 2 + (2 if len7 == 126 else 8 if len7 == 127 else 0)
        n = len7 if len7 < 126 else int.from_bytes(frames[s + 2:s + head], "big")
        mask = frames[s + head:s + head + 4]
        p = s + head + 4
        payload = bytes(x ^ mask[j & 3] for j, x in enumerate(frames[p:p + n]))
        out.append(payload[hdr:hdr + stamp.BIN_SIZE])
        s = p + n
    return out


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("sizes", [64, [64, 200, 70000]])  # one size; 7-, 16- and 64-bit lengths
def test_stamps_inside_masked_websocket_frames_take_their_send_lag(impl: str, sizes) -> None:
    from harness.protocols.ws.wsframe import mask_frames
    counts = [2, 1, 3]
    t0 = time.monotonic_ns() - 2_000_000
    out = Outbound(framing.get("len32"), [Kind("k", 1.0, sizes)], [b"f" * 70000], KEY, ME, 5)
    data, ends, _k = out.build(np.repeat(np.arange(3, dtype=np.int64), counts), 0, t0, 9)
    frames, fend = mask_frames(data, ends)
    bounds = fend[np.cumsum(counts) - 1].tolist()
    with tcp_pairs(3) as (ours, peers):
        fails = IMPLS[impl].send_bounds(ours, [0, 1, 2], bounds, frames,
                                        (out.hdr, False, t0, fend, True))
        after = time.monotonic_ns()
        assert fails == []
        got, a = b"", 0
        for p, b in zip(peers, bounds, strict=True):
            p.settimeout(2)
            part = b""
            while len(part) < b - a:
                part += p.recv(1 << 17)
            got, a = got + part, b
    raw = np.frombuffer(b"".join(_unmasked_stamps(got, out.hdr)), dtype=np.uint8)
    st, ok = stamp.from_bytes(raw.reshape(6, stamp.BIN_SIZE), False, KEY)
    assert ok.all() and (st["t"] == t0).all()
    lag = st["delay"].astype(np.int64) - 9
    assert (lag >= 2000).all() and (lag <= (after - t0) // 1000 + 1).all(), lag
    assert lag[0] == lag[1] and lag[3] == lag[4] == lag[5] and (np.diff(lag) >= 0).all()


@pytest.mark.parametrize("impl", list(IMPLS))
def test_the_lags_alone_leave_the_bytes_and_say_each_sends_lag(impl: str) -> None:
    """In-order protocols (HTTP, redis, memcached) keep their requests' stamps beside the
    connection: a stamp offset of -1 restamps nothing and hands back each send's lag."""
    t0 = time.monotonic_ns() - 1_000_000
    data = bytearray(b"GET /x HTTP/1.1\r\n\r\n" * 3)
    lags: list[int] = []
    with tcp_pairs(3) as (ours, peers):
        fails = IMPLS[impl].send_bounds(ours, [0, 1, 2], [19, 38, 57], memoryview(data),
                                        (-1, False, t0, 0, False, lags))
        after = time.monotonic_ns()
        assert fails == []
        for p in peers:
            p.settimeout(2)
            assert p.recv(100) == b"GET /x HTTP/1.1\r\n\r\n"
    assert data == bytearray(b"GET /x HTTP/1.1\r\n\r\n" * 3)
    assert len(lags) == 3 and lags == sorted(lags)
    assert lags[0] >= 1000 and lags[-1] <= (after - t0) // 1000 + 1, lags
    with pytest.raises(ValueError):  # the lags alone, with nowhere to put them
        IMPLS[impl].send_bounds([], [], [], bytearray(4), (-1, False, t0, 0, False, None))


def test_an_in_order_protocol_adds_each_sends_lag_to_the_stamps_it_keeps() -> None:
    from harness.wire.protocol import InOrder
    out = Outbound(framing.get("len32"), [Kind("k", 1.0, 64)], [b"f" * 64], KEY, ME, 3)
    p = InOrder(framing.get("len32"), out, 1 << 20, KEY, 4, ME)
    for counts, lags in (([1, 1], [0, 0]), ([2, 3], [7, 40])):  # (a round before: untouched)
        idx = np.array([1, 3], dtype=np.int64)
        cnt = np.array(counts, dtype=np.int64)
        p.build(idx.repeat(cnt), idx, cnt, 0, 10**9, 5)
        p.add_lags(idx, cnt, lags)
    st1, ok1 = p._pop(np.array([1, 1, 1]))
    st3, ok3 = p._pop(np.array([3, 3, 3, 3]))
    assert ok1.all() and ok3.all()
    assert st1["delay"].tolist() == [5, 12, 12] and st3["delay"].tolist() == [5, 45, 45, 45]
    assert (st1["t"] == 10**9).all()


@pytest.mark.e2e
@pytest.mark.alone
@pytest.mark.skipif(nginx.executable() is None,
                    reason="nginx not installed (tests/setup.sh installs it)")
def test_an_http_closed_loop_times_each_request_from_its_send(tmp_path: Path) -> None:
    """HTTP keeps its requests' stamps in a ring: with a think time (no early sends) the
    round's sends took their lag into those stamps. Quiet, against nginx (one worker, 200
    connections, think 2 ms): p50 0.466 and 0.476 ms per round, 0.158 and 0.116 per send."""
    port = nginx.free_port()
    proc = nginx.start(tmp_path, nginx.server(port, {"= /x": "ok"}), (port,))
    try:
        per_send, per_round = _per_send_and_round(tmp_path, "--host",
                                                  f"http://127.0.0.1:{port}/x")
    finally:
        nginx.stop(proc)
    assert per_send < 0.7 * per_round, (per_send, per_round)
