"""harness._hot (the C loops) against harness.wire.hot's pure functions of the same names:
the same inputs, real sockets on loopback, the same answers. Skipped, saying so, where the
extension is not built (no C compiler); the rest of the suite runs whichever is built, and
tests/test_accel.py's runs under HARNESS_PURE=1 cover the pure ones end to end."""

from __future__ import annotations

import errno
import socket
import struct
import types
from collections.abc import Callable

import numpy as np
import pytest

from harness import accel
from harness.wire import hot, stamp
from tests.support import tcp_pairs

pytestmark = pytest.mark.skipif(hot.native is None, reason=f"harness._hot: {accel.describe()}")
# the pure functions under the C names (hot.recv_fixed and the like are the C ones when
# built, so the module itself is no "pure" side)
PURE = types.SimpleNamespace(**{n[3:]: getattr(hot, n) for n in dir(hot) if n.startswith("py_")})
IMPLS = {"pure": PURE, "native": hot.native}
SIZE, HDR, KEY, ME = 64, 4, 0x51ED2701, 3


def frames(gids: list[int], seqs: list[int], key: int = KEY, worker: int = ME) -> bytes:
    """Good len32 frames of SIZE bytes for (gid, seq) each, via the pure builder."""
    out = bytearray(SIZE * len(gids))
    for k in range(len(gids)):
        out[k * SIZE:k * SIZE + HDR] = (SIZE - HDR).to_bytes(HDR, "big")
    hot.py_build_few_at(memoryview(out), HDR, SIZE, gids, [1] * len(gids), 0,
                        [10**15 + 977 * s for s in seqs], [s % 5 for s in seqs],
                        worker << 16, key)
    # the seqs: rewrite word 2 and the check (the builder numbers from seq0)
    for k, s in enumerate(seqs):
        at = k * SIZE + HDR
        w = list(struct.unpack_from("<7I", out, at))
        w[2] = s
        w[0] = (sum(a * b for a, b in zip(w[1:], stamp.WEIGHTS_INT, strict=True)) + key) \
            & 0xFFFFFFFF
        struct.pack_into("<7I", out, at, *w)
    return bytes(out)


def read_all(impl: object, feed: Callable[[list[socket.socket]], None], n: int,
             pend: list[bytes], ready: list[int], fixed: int, last: int = 1 << 16
             ) -> list[tuple]:
    """Run ``impl.recv_fixed`` over ``ready`` as the transport does (going on after each
    stop): every stop and the kept reads, receive times checked and then dropped."""
    with tcp_pairs(n) as (ours, peers):
        feed(peers)
        socks: list = list(ours)
        socks[1] = None  # a connection with no socket: the careful read
        buf = bytearray(last + 4096)
        seg_conn: list[int] = []
        seg_end: list[int] = []
        seg_t: list[int] = []
        k, off, stops = 0, 0, []
        t0 = _mono()
        while k < len(ready):
            k, off, status, m, t = impl.recv_fixed(socks, pend, ready, k, buf, off, last,
                                                   4096, fixed, seg_conn, seg_end, seg_t)
            if status == hot.DONE:
                break
            assert status != hot.LOOK or t0 <= t <= _mono()
            stops.append((k, off, status, m, bytes(buf[off:off + m]) if status == 3 else b""))
            k += 1
        assert seg_t == sorted(seg_t) and all(t0 <= t <= _mono() for t in seg_t)
        return [stops, seg_conn, seg_end, bytes(buf[:off])]


def _mono() -> int:
    import time
    return time.monotonic_ns()


def test_a_read_round_stops_where_the_pure_one_does() -> None:
    good = frames([7, 8, 9], [1, 2, 3])

    def feed(peers: list[socket.socket]) -> None:
        peers[0].sendall(good)  # three whole frames
        peers[2].sendall(good[:SIZE + 5])  # one and a bit: Python looks
        peers[3].sendall(good[:SIZE])  # one whole frame
        peers[4].close()  # EOF: a read of 0 bytes
        peers[5].sendall(good[SIZE:])  # two whole frames, but pending bytes: careful
        peers[6].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peers[6].close()  # a reset: the recv fails
        peers[7].sendall(good[:2 * SIZE])
        _settle()

    pend = [b""] * 8
    pend[5] = b"\0\0"
    ready = [0, 1, 2, 3, 4, 5, 6, 7, 3]  # 3 again: nothing left, it would block
    got = {name: read_all(impl, feed, 8, pend, ready, SIZE) for name, impl in IMPLS.items()}
    assert got["native"] == got["pure"]
    stops = got["pure"][0]
    assert [s[2] for s in stops] == [hot.CAREFUL, hot.LOOK, hot.LOOK, hot.CAREFUL,
                                     hot.FAILED, hot.FAILED]
    assert stops[-1][3] == errno.EAGAIN and stops[-2][3] == errno.ECONNRESET
    assert got["pure"][1] == [0, 3, 7]  # whole frames kept, in order
    # fixed 0 (a protocol of varied sizes): every read is Python's to look at
    got0 = {name: read_all(impl, feed, 8, [b""] * 8, [0, 3], 0)
            for name, impl in IMPLS.items()}
    assert got0["native"] == got0["pure"] and [s[2] for s in got0["pure"][0]] == [3, 3]


def test_a_read_round_stops_when_the_buffer_is_full() -> None:
    good = frames([1, 2], [5, 6])

    def feed(peers: list[socket.socket]) -> None:
        for p in peers:
            p.sendall(good)
        _settle()

    got = {name: read_all(impl, feed, 4, [b""] * 4, [0, 2, 3], SIZE, last=SIZE)
           for name, impl in IMPLS.items()}
    assert got["native"] == got["pure"]
    assert got["pure"][0][0][:3] == (1, 2 * SIZE, hot.CAREFUL)  # off past last


def _settle() -> None:
    import time
    time.sleep(0.05)  # loopback delivers at once; a margin for a busy machine


TMPL = b"+PONG\r\n"


def read_templates(impl: object, until: int) -> list:
    """Run ``impl.recv_tmpl`` as the transport does, over reads of template replies (with
    early sends) and others; every stop, what it kept, and what the peers got sent."""
    big = b"Z" * (8 << 20)  # two requests at once: more than a socket takes, sent in part
    reqs = [b"", b"PING\r\n", big, b"PING\r\n" * 3]
    owed = np.array([1, 2, 2, 1, 5, 2], dtype=np.int64)
    pend_out: list = [None] * 6
    pend_out[4] = memoryview(b"queued")  # bytes queued already: no early send
    with tcp_pairs(6) as (ours, peers):
        peers[0].sendall(TMPL)  # one reply, one owed: one request at once
        peers[1].sendall(TMPL * 3)  # three replies, two owed: none
        peers[2].sendall(TMPL * 2 + b"+PO")  # not whole: Python looks
        peers[3].sendall(b"-ERR no\r\n")  # not the template: Python looks
        peers[4].sendall(TMPL * 2)  # something queued: no early send
        peers[5].sendall(TMPL * 2)  # two requests at once, sent in part
        _settle()
        buf = bytearray(1 << 17)
        seg_conn: list[int] = []
        seg_end: list[int] = []
        seg_t: list[int] = []
        walk: list[int] = []
        codes: list[int] = []
        sent: tuple[list[int], list[int], list[int]] = ([], [], [])
        early = (reqs, owed, until, pend_out, *sent)
        ready, k, off, stops = [0, 1, 2, 3, 4, 5], 0, 0, []
        t0 = _mono()
        while k < len(ready):
            k, off, status, m, t = impl.recv_tmpl(
                list(ours), [b""] * 6, ready, k, buf, off, 1 << 16, 4096, 0, seg_conn,
                seg_end, seg_t, memoryview(TMPL * 4), len(TMPL), 200, walk, codes, early)
            if status == hot.DONE:
                break
            if status == hot.QUEUE:
                assert 0 < m < len(big)
                m = -1
            stops.append((k, off, status, m))
            k += 1
        assert all(t0 <= t <= _mono() for t in seg_t + sent[2])
        assert seg_t == sorted(seg_t) and sent[2] == sorted(sent[2])
        peers[0].settimeout(0.5)
        got0 = peers[0].recv(100) if sent[0] and sent[0][0] == 0 else b""
        return [stops, seg_conn, seg_end, walk, codes, sent[0], sent[1], got0,
                bytes(buf[:off])]


def test_a_template_read_round_agrees_and_sends_early() -> None:
    far = _mono() + 60 * 10**9
    got = {name: read_templates(impl, far) for name, impl in IMPLS.items()}
    assert got["native"] == got["pure"]
    stops, seg_conn, _, walk, codes, sent_conn, sent_k, got0, _ = got["pure"]
    assert [s[2] for s in stops] == [hot.LOOK, hot.LOOK, hot.QUEUE]
    assert seg_conn == [0, 1, 4, 5]  # whole template replies kept (2 and 3 are Python's)
    assert len(walk) == len(codes) == 1 + 3 + 2 + 2 and set(codes) == {200}
    assert sent_conn == [0, 5] and sent_k == [1, 2] and got0 == b"PING\r\n"
    # at or after ``until`` (the end of sending): nothing goes out early
    late = {name: read_templates(impl, 0) for name, impl in IMPLS.items()}
    assert late["native"] == late["pure"]
    assert late["pure"][5] == [] and [s[2] for s in late["pure"][0]] == [hot.LOOK, hot.LOOK]


def test_a_send_round_reports_what_the_pure_one_does() -> None:
    for impl_name in ("pure", "native"):
        impl = IMPLS[impl_name]
        with tcp_pairs(4) as (ours, peers):
            ours[1].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            peers[2].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peers[2].close()
            _settle()
            for chunk in (65536, 4096, 64, 1):  # fill connection 1's buffers: it blocks
                try:
                    while True:
                        ours[1].send(b"x" * chunk)
                except BlockingIOError:
                    pass
            data = memoryview(bytes(range(256)) * 4)
            idx = np.array([0, 1, 2, 3], dtype=np.int64)
            bounds = [100, 200, 300, 1024]
            out = impl.send_bounds(ours, idx, bounds, data)
            assert out[0] == (1, 0, errno.EAGAIN), impl_name
            assert out[1][0] == 2 and out[1][1] == 0 and \
                out[1][2] in (errno.ECONNRESET, errno.EPIPE), impl_name
            assert len(out) == 2
            peers[0].settimeout(2)
            assert peers[0].recv(1000) == bytes(data[:100])
            peers[3].settimeout(2)
            got = b""
            while len(got) < 724:
                got += peers[3].recv(1000)
            assert got == bytes(data[300:1024])
            # a strided index and a list give the same
            assert impl.send_bounds(ours, np.array([0, 9, 3])[::2], [1, 2], data) == []
            assert impl.send_bounds(ours, [3], [5], data) == []


class _Wrapped:
    """Not a socket, but has one's fileno() and send(): the C loops' other way to an fd."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: memoryview) -> int:
        return self.sock.send(data)


def test_a_socket_s_fd_is_read_from_the_object_or_from_fileno_alike() -> None:
    """On this CPython the C loops read a socket's fd from the object itself (its layout
    checked at import: hot.native.fast_fd); an object that is not a socket goes through
    fileno(). Both reach the same peer, and a closed socket's send is EBADF in both builds."""
    assert hot.native.fast_fd == 1
    for impl_name in ("pure", "native"):
        impl = IMPLS[impl_name]
        with tcp_pairs(2) as (ours, peers):
            socks = [ours[0], _Wrapped(ours[1])]
            assert impl.send_bounds(socks, [0, 1], [3, 7], memoryview(b"abcdefg")) == []
            for peer, want in zip(peers, (b"abc", b"defg"), strict=True):
                peer.settimeout(2)
                assert peer.recv(100) == want, impl_name
            ours[0].close()  # fd -1: its send fails, reported as the pure loop reports it
            assert impl.send_bounds(ours, [0], [1], memoryview(b"x")) == [(0, 0, errno.EBADF)]


def test_take_few_agrees_on_random_rounds() -> None:
    """The same frames, or None, with one frame a read or several, mangled bytes, foreign
    connections, a round longer than its reads, a read that splits a frame, another
    worker's frames, and more frames than ``most``."""
    rng = np.random.default_rng(21)
    gids = [int(g) for g in rng.integers(0, 2**32, 40)]
    for trial in range(600):
        n = int(rng.integers(1, 15))
        conns = [int(c) for c in rng.integers(0, 40, n)]
        seqs = [int(s) for s in rng.integers(0, 2**32, n)]
        ends = [SIZE * (k + 1) for k in range(n)]
        senders = conns  # each frame's connection
        what = trial % 8
        if what in (3, 6) and n > 1:  # several frames in a read: a read's are its conn's
            last = sorted({int(k) for k in rng.integers(0, n - 1, int(rng.integers(1, n)))})
            last.append(n - 1)  # each read's last frame
            ends = [ends[k] for k in last]
            conns = [conns[k] for k in last]
            senders = [conns[next(j for j, e in enumerate(last) if e >= k)] for k in range(n)]
            if what == 6:  # one frame of another connection's inside a read
                senders = list(senders)
                senders[int(rng.integers(0, n))] = int(rng.integers(0, 40))
        buf = bytearray(frames([gids[c] for c in senders], seqs))
        if what == 1:
            buf[int(rng.integers(0, len(buf)))] ^= 1 << int(rng.integers(0, 8))
        elif what == 2:
            conns[int(rng.integers(0, n))] = int(rng.integers(0, 40))  # maybe foreign
        elif what == 4:
            buf += b"\0" * 5  # a round longer than its reads
        elif what == 7 and n > 1:
            ends[0] += 3  # a read that ends inside a frame
        ts = [10**12 + 7 * k for k in range(len(ends))]
        me = ME if what != 5 else ME + int(rng.integers(0, 2))
        args = (buf, conns, ends, ts, SIZE, HDR, SIZE - HDR, KEY, me, gids, 12)
        want = hot.py_take_few(*args)
        assert hot.native.take_few(*args) == want, trial
        if what in (0, 3) and n <= 12:
            assert want is not None and want[2] == seqs, trial
            if len(ends) == n:  # one frame a read: the reads' own lists
                assert want[0] is conns and want[1] is ts
            else:
                assert want[0] == senders and len(want[1]) == n


def test_the_builders_agree_on_random_rounds() -> None:
    rng = np.random.default_rng(5)
    for trial in range(300):
        m = int(rng.integers(1, 10))
        gids = [int(g) for g in rng.integers(0, 2**32, m)]
        counts = [int(c) for c in rng.integers(1, 4, m)]
        n = sum(counts)
        seq0 = int(rng.integers(0, 2**40))  # past u32: wraps
        t = int(rng.integers(0, 2**63))
        tints = [int(x) for x in rng.integers(0, 2**63, n)]
        delays = [int(x) for x in rng.integers(0, 2**33, n)]  # past u32: masked
        kw, key = (trial % 7) << 16, int(rng.integers(0, 2**40))
        outs = []
        for impl in (hot, hot.native):
            fns = (impl.py_build_few, impl.py_build_few_at) if impl is hot else \
                (impl.build_few, impl.build_few_at)
            a, b = bytearray(SIZE * n), bytearray(SIZE * n)
            ba = fns[0](memoryview(a), HDR, SIZE, gids, counts, seq0, t, kw, key)
            bb = fns[1](memoryview(b), HDR, SIZE, gids, counts, seq0, tints, delays, kw, key)
            outs.append((bytes(a), ba, bytes(b), bb))
        assert outs[0] == outs[1], trial


def test_bad_arguments_raise_and_never_crash() -> None:
    n = hot.native
    with pytest.raises(TypeError):
        n.recv_fixed(None, [], [], 0, bytearray(10), 0, 0, 1, 1, [], [], [])
    with pytest.raises(IndexError):
        n.recv_fixed([None], [b""], [5], 0, bytearray(10), 0, 0, 1, 1, [], [], [])
    with pytest.raises(ValueError), tcp_pairs(1) as (ours, _):  # the buffer shorter than a chunk
        n.recv_fixed(ours, [b""], [0], 0, bytearray(10), 0, 10, 4096, 1, [], [], [])
    with pytest.raises(TypeError):  # early: not a tuple; owed: not int64
        n.recv_tmpl([], [], [], 0, bytearray(10), 0, 0, 1, 0, [], [], [], b"x", 1, 0, [], [],
                    [])
    with pytest.raises(TypeError):
        n.recv_tmpl([], [], [], 0, bytearray(10), 0, 0, 1, 0, [], [], [], b"x", 1, 0, [], [],
                    ([], np.zeros(2, dtype=np.int32), 0, [], [], [], []))
    with pytest.raises(ValueError):
        n.recv_tmpl([], [], [], 0, bytearray(10), 0, 0, 1, 0, [], [], [], b"x", -1, 0, [], [],
                    None)
    with pytest.raises(TypeError):
        n.send_bounds([], np.zeros(2, dtype=np.int32), [1, 2], b"ab")
    with pytest.raises(IndexError):
        n.send_bounds([], [0], [1], b"ab")
    with pytest.raises(ValueError):
        n.build_few(bytearray(10), HDR, SIZE, [1], [1], 0, 0, 0, 0)  # too short
    assert n.take_few(b"", [], [], [], SIZE, HDR, 60, KEY, ME, [], 12) is None


def test_epoll_ready_names_what_the_pure_one_names() -> None:
    import select
    with tcp_pairs(4) as (ours, peers):
        peers[0].sendall(b"x")  # readable
        peers[2].close()  # EOF: readable
        got = {}
        for name in ("pure", "native"):
            ep = select.epoll()
            try:
                data = {}
                for k, s in enumerate(ours):
                    ev = select.EPOLLIN | (select.EPOLLOUT if k == 3 else 0)
                    ep.register(s.fileno(), ev)
                    data[s.fileno()] = 10 + k
                handle = ep if name == "pure" else ep.fileno()
                fn = hot.py_epoll_ready if name == "pure" else hot.native.epoll_ready
                r, w = fn(handle, 1.0, 64, data)
                got[name] = (sorted(r), sorted(w))
                ep.unregister(ours[0].fileno())
                ep.unregister(ours[2].fileno())
                ep.unregister(ours[3].fileno())
                t0 = _mono()
                assert fn(handle, 0.02, 64, data) == ([], [])  # nothing: waits, rounded up
                assert _mono() - t0 >= 15_000_000
            finally:
                ep.close()
        assert got["native"] == got["pure"] == ([10, 12], [13])
    with pytest.raises(KeyError):  # an fd with no number
        ep = select.epoll()
        try:
            r, w = socket.socketpair()
            ep.register(r.fileno(), select.EPOLLOUT)
            hot.native.epoll_ready(ep.fileno(), 0, 8, {})
        finally:
            ep.close()
            r.close()
            w.close()


def test_the_pacing_and_ledger_kernels_agree_on_random_rounds() -> None:
    rng = np.random.default_rng(8)
    for trial in range(300):
        n = int(rng.integers(1, 30))
        state = [rng.integers(0, 3, n).astype(np.int64) for _ in range(4)]  # out, cr, pr, early
        blocked = rng.random(n) < 0.2
        own = [int(c) for c in rng.integers(0, n, int(rng.integers(1, 12)))]
        now, measuring = int(rng.integers(0, 2**62)), bool(trial % 2)
        a = [x.copy() for x in state]
        b = [x.copy() for x in state]
        hot.py_credit_few(own, now, a[0], a[1], a[2], bool(trial % 3))
        hot.native.credit_few(own, now, b[0], b[1], b[2], bool(trial % 3))
        assert all((x == y).all() for x, y in zip(a, b, strict=True)), trial
        ta = hot.py_closed_take(a[1], blocked, a[0], a[2], a[3], now, measuring)
        tb = hot.native.closed_take(b[1], blocked, b[0], b[2], b[3], now, measuring)
        assert ta == tb and all((x == y).all() for x, y in zip(a, b, strict=True)), trial
        assert ta is None or (a[1][ta[0]] == 0).all()
        seen_a, seen_b = np.zeros(64, dtype=bool), np.zeros(64, dtype=bool)
        seqs = [int(s) for s in rng.integers(0, 70 if trial % 5 == 0 else 64, 10)]
        lo = int(rng.integers(0, 20))
        assert hot.py_mark_few(seqs, seen_a, lo) == hot.native.mark_few(seqs, seen_b, lo)
        assert (seen_a == seen_b).all(), trial
    with pytest.raises(TypeError):  # an array of another width
        hot.native.credit_few([0], 0, np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int64),
                              np.zeros(2, dtype=np.int64), True)
    with pytest.raises(IndexError):
        hot.native.credit_few([5], 0, *(np.zeros(2, dtype=np.int64) for _ in range(3)), True)


def test_open_commit_agrees_on_random_rounds() -> None:
    """The open loop's small commit: the same times, delays, worst delay and arrays, with
    sends late and on time, idle connections and busy ones, backlog cleared or kept."""
    rng = np.random.default_rng(21)
    for trial in range(400):
        n = int(rng.integers(1, 40))
        period = int(rng.integers(1, 5)) * 1_000_000
        phase = rng.integers(0, 4, n).astype(np.int64) * 500_000
        state = [rng.integers(0, 4, n).astype(np.int64) for _ in range(3)]  # sched, out, pr
        backlog = rng.random(n) < 0.5
        idx = sorted({int(c) for c in rng.integers(0, n, int(rng.integers(1, 33)))})
        counts = [int(c) for c in rng.integers(1, 4, len(idx))]
        base = int(rng.integers(0, 10**12))
        now = base + int(rng.integers(0, 12)) * period // 2
        clear = [-1, 5000, 0][trial % 3]
        a = [x.copy() for x in (*state, backlog)]
        b = [x.copy() for x in (*state, backlog)]
        got_a = hot.py_open_commit(idx, counts, now, base, period, phase, *a, clear)
        got_b = hot.native.open_commit(idx, counts, now, base, period, phase, *b, clear)
        assert got_a == got_b, trial
        assert all((x == y).all() for x, y in zip(a, b, strict=True)), trial
        assert len(got_a[0]) == sum(counts) and got_a[2] == max(got_a[1])
    with pytest.raises(IndexError):
        hot.native.open_commit([3], [1], 0, 0, 1, *(np.zeros(2, dtype=np.int64)
                                                   for _ in range(4)), np.zeros(2, bool), -1)
    with pytest.raises(ValueError):
        hot.native.open_commit([0], [1, 1], 0, 0, 1, *(np.zeros(2, dtype=np.int64)
                                                      for _ in range(4)), np.zeros(2, bool), -1)


def test_open_pick_agrees_on_random_rounds() -> None:
    """The open loop's pick of its candidates: the same senders, counts and laggards, with
    instants before a phase (a floored negative), budgets, bursts capped, connections down,
    listening or blocked, and candidates as a list or an int64 array."""
    rng = np.random.default_rng(34)
    for trial in range(400):
        n = int(rng.integers(1, 60))
        period = int(rng.integers(1, 5)) * 1_000_000
        phase = rng.integers(0, 8, n).astype(np.int64) * 500_000
        sched = rng.integers(0, 6, n).astype(np.int64)
        alive, sends, blocked = (rng.random(n) < q for q in (0.8, 0.9, 0.2))
        budget = rng.integers(0, 4, n).astype(np.int64) if trial % 2 else None
        cand = sorted({int(c) for c in rng.integers(0, n, int(rng.integers(1, 40)))})
        base = int(rng.integers(-3, 12)) * period // 2
        burst = int(rng.integers(1, 6))
        args = (base, period, phase, sched, alive, sends, blocked, budget, burst)
        want = hot.py_open_pick(cand, *args)
        assert hot.native.open_pick(cand, *args) == want, trial
        assert hot.native.open_pick(np.array(cand, dtype=np.int64), *args) == want, trial
    zeros = [np.zeros(2, dtype=np.int64)] * 2 + [np.ones(2, bool)] * 3
    with pytest.raises(IndexError):
        hot.native.open_pick([2], 0, 1, *zeros, None, 1)
    with pytest.raises(ValueError):
        hot.native.open_pick([0], 0, 0, *zeros, None, 1)
    with pytest.raises(TypeError):
        hot.native.open_pick([0], 0, 1, zeros[0], zeros[1], zeros[0], *zeros[3:], None, 1)


def test_lat_few_agrees_on_random_rounds() -> None:
    """A small round's latencies: the same lists and bounds, open loop and closed, negative
    ones (an arrival stamp before the send's lag), and None when one was sent before the
    window."""
    rng = np.random.default_rng(55)
    for trial in range(400):
        n = int(rng.integers(1, 70))
        tint = [int(x) for x in rng.integers(10**9, 10**9 + 10**6, n)]
        t = [b + int(x) for b, x in zip(tint, rng.integers(-2000, 10**7, n), strict=True)]
        delay = [int(x) for x in rng.integers(0, 3000, n)]
        begin = 10**9 + (int(rng.integers(0, 10**6)) if trial % 4 == 0 else 0)
        for open_loop in (False, True):
            want = hot.py_lat_few(t, tint, delay, open_loop, begin)
            assert hot.native.lat_few(t, tint, delay, open_loop, begin) == want, trial
            if want is not None:
                assert (want[1], want[2]) == (min(want[0]), max(want[0]))
    with pytest.raises(ValueError):
        hot.native.lat_few([], [], [], True, 0)
    with pytest.raises(ValueError):
        hot.native.lat_few([1, 2], [1], [0, 0], True, 0)


@pytest.mark.parametrize("impl", ["pure", "native"])
def test_the_timer_fires_at_its_time_and_clears(impl: str, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    import select
    import time

    from harness.wire import timer as timer_mod
    monkeypatch.setattr(timer_mod, "_native", None if impl == "pure" else hot.native)
    t = timer_mod.Timer.create()
    assert t is not None
    try:
        t.clear()
        readable = select.poll()
        readable.register(t.fileno(), select.POLLIN)
        assert readable.poll(0) == []
        at = time.monotonic_ns() + 30_000_000
        t.arm(at)
        assert readable.poll(10) == []  # not yet
        assert readable.poll(1000) and time.monotonic_ns() >= at  # at its time, not before
        t.clear()
        assert readable.poll(0) == []
        t.arm(1)  # in the past: at once
        assert readable.poll(1000)
        t.clear()
        t.clear()  # nothing to read: nothing happens
    finally:
        t.close()
