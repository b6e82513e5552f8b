"""harness.wire.fused: a closed loop's fused echo round (and rounds) in C against its pure
twin, over real sockets on loopback: the same answers, the same state changed, the same
bytes sent, and where a round stops short, the same place and nothing changed that the
worker's own path will change. The worker's use of them runs in every closed-loop echo
test of the suite (and under HARNESS_PURE=1 in tests/test_accel.py's reruns)."""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from harness import accel
from harness.core.result import Times
from harness.run.shares import build_shares
from harness.wire import fused, stamp
from harness.wire.poller import READ, WRITE, Poller
from harness.wire.rounds import CHUNK
from harness.worker.worker import Worker
from tests import servers
from tests.support import plan_for, tcp_pairs
from tests.test_hot import HDR, KEY, ME, SIZE, frames
from workloads import load

pytestmark = pytest.mark.skipif(fused.native is None, reason=f"harness._hot: {accel.describe()}")
ROUNDS = {"pure": fused.py_echo_round, "native": getattr(fused.native, "echo_round", None)}
LOOPS = {"pure": fused.py_echo_loop, "native": getattr(fused.native, "echo_loop", None)}
N = 6
BIG = 1 << 62
LAG = (HDR, False, SIZE, False)  # restamp: binary stamps at HDR, SIZE-byte messages


def fresh(n: int = N, seen: int = 1 << 12) -> dict[str, np.ndarray]:
    """A step's arrays: one message outstanding on each connection."""
    return {"outstanding": np.ones(n, np.int64), "credits": np.zeros(n, np.int64),
            "progress": np.zeros(n, np.int64), "blocked": np.zeros(n, bool),
            "early": np.zeros(n, np.int64), "seen": np.zeros(seen, bool)}


def ctx_of(socks: list, st: dict, gids: list[int], send_most: int = 128,
           stamped: bool = False, most: int = 128) -> tuple:
    return fused.context(socks, [b""] * len(socks), CHUNK, SIZE, stamped, HDR, SIZE - HDR, KEY,
                         ME, gids, most, st["outstanding"], st["credits"], st["progress"], True,
                         st["blocked"], st["early"], SIZE, ME << 16, KEY, LAG, send_most)


def out_buffer(rows: int = 64) -> memoryview:
    """The send buffer: frames whose length prefix is there (as Outbound keeps them)."""
    out = bytearray(SIZE * rows)
    for k in range(rows):
        out[k * SIZE:k * SIZE + HDR] = (SIZE - HDR).to_bytes(HDR, "big")
    return memoryview(out)


def stamps(data: bytes) -> list[tuple[int, int, int]]:
    """(gid, seq, kind word) of each good frame; a bad one fails the test."""
    got = []
    for at in range(0, len(data), SIZE):
        w = struct.unpack_from("<7I", data, at + HDR)
        assert (sum(a * b for a, b in zip(w[1:], stamp.WEIGHTS_INT, strict=True)) + KEY) \
            & 0xFFFFFFFF == w[0]
        got.append((w[1], w[2], w[3]))
    return got


def drain(peers: list[socket.socket]) -> list[bytes]:
    out = []
    for p in peers:
        p.setblocking(False)
        chunks = []
        while True:
            try:
                b = p.recv(1 << 16)
            except BlockingIOError:
                break
            if not b:
                break
            chunks.append(b)
        out.append(b"".join(chunks))
    return out


def one_round(impl: str, feed: Callable[[list[socket.socket], list[int]], None],
              measuring: bool = True, sending: bool = True, measure: int = 0, end: int = BIG,
              st: dict | None = None, lo: int = 0, send_most: int = 128,
              none_at: int | None = None) -> tuple:
    """One round of ``impl`` over N fresh connections whose peers ``feed`` wrote: the
    result with its clock-dependent parts taken out, the arrays after, and the stamps each
    peer got (a round's send waits a moment for them)."""
    st = st or fresh()
    gids = [1000 + 7 * i for i in range(N)]
    with tcp_pairs(N) as (ours, peers):
        feed(peers, gids)
        time.sleep(0.05)
        socks: list = list(ours)
        if none_at is not None:
            socks[none_at] = None
        t0 = time.monotonic_ns()
        r = ROUNDS[impl](ctx_of(socks, st, gids, send_most), list(range(N)), bytearray(1 << 20),
                         out_buffer(), st["seen"], lo, 5000, measuring, sending, 0, measure, end)
        t1 = time.monotonic_ns()
        time.sleep(0.05)
        sent = [stamps(b) for b in drain(peers)]
    progress = st["progress"]
    assert ((progress == 0) | ((progress >= t0) & (progress <= t1))).all()
    arrays = {k: v.tolist() for k, v in st.items() if k != "progress"}
    arrays["seen"] = np.flatnonzero(st["seen"]).tolist()
    return normal(r, t0, t1), arrays, sent


def normal(r: tuple, t0: int, t1: int) -> tuple:
    """The result without its clock reads (each checked to lie in the call)."""
    if r[0] == fused.ROUND:
        _, replies, t_last, got, lats, marked, send, now, *rest = r
        assert t0 <= t_last <= now <= t1
        if lats is not None:
            lat, lo, hi, svc, _, _ = lats
            assert svc is None and lo == min(lat) and hi == max(lat) and len(lat) == replies
            lats = len(lat)
        return (fused.ROUND, replies, got, lats, marked, send, *rest)
    if r[0] == fused.READ:
        _, k, off, status, n, t, seg_conn, seg_end, seg_t, ready = r
        assert all(t0 <= x <= t1 for x in seg_t)
        return (fused.READ, k, off, status, n, seg_conn, seg_end, ready)
    if r[0] == fused.ACCOUNT:
        assert t0 <= r[1] <= t1 and all(t0 <= x <= r[1] for x in r[3])
        return (r[0], r[2], *r[4:])
    assert all(t0 <= x <= t1 for x in r[3])
    return r[:3]


def good(seqs: Callable[[int], int] = lambda i: 100 + i, count: int = 1
         ) -> Callable[[list[socket.socket], list[int]], None]:
    def feed(peers: list[socket.socket], gids: list[int]) -> None:
        for i, p in enumerate(peers):
            p.sendall(frames([gids[i]] * count, [seqs(i) + j for j in range(count)]))
    return feed


def both(**kw: object) -> tuple:
    a = one_round("pure", **kw)  # type: ignore[arg-type]
    b = one_round("native", **kw)  # type: ignore[arg-type]
    assert a == b
    return a


def test_a_whole_round_reads_books_and_sends_the_same() -> None:
    (code, replies, got, lats, marked, send, conns, counts, total, bounds, failed), arrays, \
        sent = both(feed=good(count=2), st=fresh() | {"outstanding": np.full(N, 2, np.int64)})
    assert (code, replies, got, lats, marked, send) == (fused.ROUND, 2 * N, 2 * N, 2 * N,
                                                        2 * N, fused.SENT)
    assert conns == list(range(N)) and counts == [2] * N and total == 2 * N and failed == []
    assert bounds == [2 * SIZE * (k + 1) for k in range(N)]
    assert arrays["outstanding"] == [2] * N and arrays["credits"] == [0] * N
    assert arrays["seen"] == sorted({100 + i + j for i in range(N) for j in range(2)})
    gids = [1000 + 7 * i for i in range(N)]
    assert sent == [[(gids[i], 5000 + 2 * i, ME << 16), (gids[i], 5001 + 2 * i, ME << 16)]
                    for i in range(N)]


def test_outside_the_window_nothing_is_timed_and_early_sends_are_counted() -> None:
    (code, replies, got, lats, marked, send, *_), arrays, sent = both(
        feed=good(), measuring=False, measure=BIG, lo=BIG)
    assert (code, replies, got, lats, marked, send) == (fused.ROUND, N, 0, None, 0,
                                                        fused.SENT)
    assert arrays["early"] == [1] * N and arrays["seen"] == []
    assert [len(s) for s in sent] == [1] * N


def test_the_window_opening_leaves_the_send_to_the_worker() -> None:
    r, arrays, sent = both(feed=good(), measuring=False, measure=0, lo=BIG)
    assert r[5] == fused.EDGE and r[6:] == (None, None, 0, None, None)
    assert arrays["credits"] == [1] * N and arrays["outstanding"] == [0] * N
    assert sent == [[]] * N


@pytest.mark.parametrize(("sending", "end"), [(False, BIG), (True, 1)])
def test_no_send_when_not_sending_or_past_the_end(sending: bool, end: int) -> None:
    r, arrays, sent = both(feed=good(), sending=sending, end=end)
    assert r[5] == fused.NO_SEND and arrays["credits"] == [1] * N and sent == [[]] * N


def test_a_round_too_large_is_committed_for_the_worker_to_build() -> None:
    r, arrays, sent = both(feed=good(), send_most=2)
    assert r[5:10] == (fused.BIG, list(range(N)), [1] * N, N, None)
    assert arrays["outstanding"] == [1] * N and arrays["credits"] == [0] * N
    assert sent == [[]] * N


@pytest.mark.parametrize("case", ["mangled", "foreign", "partial", "closed", "no socket",
                                  "before the window", "past the bitmap"])
def test_a_round_stops_where_its_own_path_takes_over_with_nothing_booked(case: str) -> None:
    def feed(peers: list[socket.socket], gids: list[int]) -> None:
        good()(peers[:1] if case == "closed" else peers, gids)  # (peer 1 sends nothing)
        if case == "mangled":
            data = bytearray(frames([gids[2]], [7]))
            data[HDR + 9] ^= 4
            peers[2].sendall(bytes(data))
        elif case == "foreign":
            peers[3].sendall(frames([gids[4]], [8]))
        elif case == "partial":
            peers[4].sendall(frames([gids[4]], [9])[:SIZE // 2])
        elif case == "closed":
            for p, g in zip(peers[2:], gids[2:], strict=True):
                p.sendall(frames([g], [100]))
            peers[1].shutdown(socket.SHUT_WR)
    kw: dict = {"feed": feed}
    if case == "no socket":
        kw["none_at"] = 3
    elif case == "before the window":
        kw["measure"] = 10**15 + 977 * 103
    elif case == "past the bitmap":
        kw["st"] = fresh(seen=104)
    r, arrays, sent = both(**kw)
    want = {"mangled": fused.PARSE, "foreign": fused.PARSE, "partial": fused.READ,
            "closed": fused.READ, "no socket": fused.READ}.get(case, fused.ACCOUNT)
    assert r[0] == want
    assert arrays["outstanding"] == [1] * N and arrays["credits"] == [0] * N
    assert arrays["seen"] == [] and sent == [[]] * N


# ---------------------------------------------------------------------- echo_loop

@contextmanager
def echoed(n: int) -> Iterator[tuple[list[socket.socket], list[socket.socket]]]:
    """``n`` TCP pairs whose peers echo what they get (a thread), until the block ends."""
    done = threading.Event()
    with tcp_pairs(n) as (ours, peers):
        sel = selectors.DefaultSelector()
        for p in peers:
            p.setblocking(False)
            sel.register(p, selectors.EVENT_READ)

        def echo() -> None:
            while not done.is_set():
                for key, _ in sel.select(0.01):
                    try:
                        data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                        if data:
                            key.fileobj.sendall(data)  # type: ignore[union-attr]
                    except OSError:
                        pass
        th = threading.Thread(target=echo, daemon=True)
        th.start()
        try:
            yield ours, peers
        finally:
            done.set()
            th.join(5)
            sel.close()


@pytest.mark.parametrize("impl", ["pure", "native"])
def test_the_loop_runs_echo_rounds_until_its_time_and_books_them_together(impl: str) -> None:
    """A closed loop of one in flight on each connection for 0.2 s: every reply booked
    once, each freeing a send, the rounds' counts adding up; the last round alone."""
    st = fresh(seen=1 << 22)
    gids = [1000 + 7 * i for i in range(N)]
    sel = Poller()
    with echoed(N) as (ours, _peers):
        for i, s in enumerate(ours):
            sel.register(s, READ, i)
            s.sendall(frames([gids[i]], [i]))
        handle = sel.ep if impl == "pure" else sel.ep.fileno()
        t0 = time.monotonic_ns()
        stop = t0 + 200_000_000
        acc, last = LOOPS[impl](ctx_of(list(ours), st, gids), handle, sel.data, 64, t0, stop,
                                bytearray(1 << 20), out_buffer(), st["seen"], 0, N, 0, 0, BIG)
        t1 = time.monotonic_ns()
    sel.close()
    polls, replies, t_last, got, lats, lo, hi, marked, sent, nbytes, first, last_now, big = acc
    assert big == fused.NO_BINS  # (no histogram given: no big round taken)
    assert t1 >= stop and replies > 10 * N and polls >= 1
    assert got == replies == marked == len(lats) and lo == min(lats) and hi == max(lats)
    assert t0 <= first <= last_now < stop and t_last < stop
    # the round that ended the loop, booked alone (none when its last poll found nothing)
    assert last is None or (last[0] == fused.ROUND and last[6] == fused.SENT)
    more, more_sent = (last[1], last[10]) if last is not None else (0, 0)
    # each reply freed a send, and each seq came back once
    assert sent + more_sent == replies + more and nbytes == sent * SIZE
    assert np.count_nonzero(st["seen"]) == replies + more
    assert st["outstanding"].tolist() == [1] * N


@pytest.mark.parametrize("impl", ["pure", "native"])
def test_the_loop_hands_back_a_writable_connection_or_the_timer(impl: str) -> None:
    st = fresh()
    gids = [1000 + 7 * i for i in range(N)]
    sel = Poller()
    with tcp_pairs(N) as (ours, _peers):
        for i, s in enumerate(ours):
            sel.register(s, READ | (WRITE if i == 2 else 0), i)
        handle = sel.ep if impl == "pure" else sel.ep.fileno()
        now = time.monotonic_ns()
        acc, last = LOOPS[impl](ctx_of(list(ours), st, gids), handle, sel.data, 64, now,
                                now + 10**8, bytearray(1 << 20), out_buffer(), st["seen"], 0,
                                0, 0, 0, BIG)
    sel.close()
    assert acc[:2] == (1, 0) and last == (fused.POLLED, [], [2])


# ---------------------------------------------------------------------- open_loop

OPENS = {"pure": fused.py_open_loop, "native": getattr(fused.native, "open_loop", None)}
PERIOD = 10_000_000  # 100 msgs/s a connection


def open_state(n: int, base: int) -> tuple[dict, tuple, tuple]:
    """An open loop's arrays, its wheel (order, offs, period, base, seen, laggards) and its
    pacing (sched_base, period, phase, sched, alive, sends, backlog, burst, behind, pick
    and send limits): connection i's instants at base + i * PERIOD / n + k * PERIOD."""
    st = fresh(n, seen=1 << 20) | {"outstanding": np.zeros(n, np.int64),
                                    "phase": np.arange(n, dtype=np.int64) * (PERIOD // n),
                                    "sched": np.zeros(n, np.int64),
                                    "alive": np.ones(n, bool), "sends": np.ones(n, bool),
                                    "backlog": np.zeros(n, bool)}
    wheel = (np.arange(n, dtype=np.int64), st["phase"].copy(), PERIOD, base, base - 1, [])
    pace = (base, PERIOD, st["phase"], st["sched"], st["alive"], st["sends"], st["backlog"],
            4096, 5000, 256, 128)
    return st, wheel, pace


def run_open(impl: str, writable: int | None = None, pick_most: int = 256,
             seconds: float = 0.2, behind: int = 5000) -> tuple:
    gids = [1000 + 7 * i for i in range(N)]
    sel = Poller()
    with echoed(N) as (ours, _peers):
        for i, s in enumerate(ours):
            sel.register(s, READ | (WRITE if i == writable else 0), i)
        t0 = time.monotonic_ns()
        st, wheel, pace = open_state(N, t0)
        pace = (*pace[:8], behind, pick_most, pace[10])
        ctx = fused.context(list(ours), [b""] * N, CHUNK, SIZE, False, HDR, SIZE - HDR, KEY, ME,
                            gids, 1024, st["outstanding"], st["credits"], st["progress"],
                            False, st["blocked"], st["early"], SIZE, ME << 16, KEY, LAG, 128)
        handle = sel.ep if impl == "pure" else sel.ep.fileno()
        stop = t0 + int(seconds * 1e9)
        got = OPENS[impl](ctx, handle, sel.data, 64, t0, stop, wheel, pace, bytearray(1 << 20),
                          out_buffer(), st["seen"], 0, 0, t0, t0, 1 << 62)
        t1 = time.monotonic_ns()
    sel.close()
    return got, st, t0, stop, t1


@pytest.mark.parametrize("impl", ["pure", "native"])
def test_the_open_loop_sends_on_schedule_and_books_every_reply(impl: str) -> None:
    """0.2 s of N connections at 100/s each: every instant due sent once, at its time or
    after (never before), every reply read at the next instants booked once, with its
    latency and its service time. (No send counts as behind: a busy machine's would end
    the loop early.)"""
    (acc, wseen, lag, wake, last), st, t0, stop, t1 = run_open(impl, behind=10**12)
    polls, replies, t_last, got, lats, marked, sent, nbytes, first, last_now = acc
    # (a read after stop_at, on a busy machine: its round is booked alone)
    assert t1 >= stop and (last is None or last[0] == fused.BOOK) and lag == []
    alone = last[5] if last is not None else 0
    assert t0 <= first <= last_now <= wseen < stop and wake > t0
    due = (last_now - t0 - st["phase"]) // PERIOD + 1  # each one's instants by the last send
    assert st["sched"].tolist() == np.maximum(due, 0).tolist() and sent == st["sched"].sum()
    assert nbytes == sent * SIZE and sent >= 15 * N
    assert st["outstanding"].sum() == sent - replies - alone and replies >= sent - 5 * N
    assert got == replies == marked == np.count_nonzero(st["seen"]) - alone
    lat, lo, hi, svc, slo, shi = lats
    assert len(lat) == len(svc) == replies and (lo, hi, slo, shi) == (min(lat), max(lat),
                                                                      min(svc), max(svc))
    assert lo > 0 and slo > 0 and all(s <= x for s, x in zip(svc, lat, strict=True))
    assert polls >= 15


@pytest.mark.parametrize("impl", ["pure", "native"])
def test_the_open_loop_leaves_an_instant_it_does_not_take_untouched(impl: str) -> None:
    (acc, wseen, lag, wake, last), st, t0, _, t1 = run_open(impl, pick_most=0, seconds=0.05)
    assert acc[0] == acc[6] == 0 and last is None and wseen == t0 - 1 and lag == []
    assert st["sched"].sum() == 0 and t1 - t0 < 40_000_000


@pytest.mark.parametrize("impl", ["pure", "native"])
def test_the_open_loop_hands_back_a_writable_connection(impl: str) -> None:
    # (no send counts as behind: a busy machine's first instant, late, would end the loop
    # before its first poll; a clean-clone run failed so once, 2026-12-06)
    (acc, _, _, _, last), st, _, _, _ = run_open(impl, writable=2, behind=10**12)
    assert acc[0] == 1 and last is not None and last[0] == fused.POLLED and last[2] == [2]
    assert acc[6] == st["sched"].sum() >= 1


# ---------------------------------------------------------------------- a worker's run

@pytest.mark.e2e
@pytest.mark.parametrize("rate", [200.0, 5.0])
def test_a_worker_whose_open_loop_is_fused_keeps_its_schedule_exactly(rate: float) -> None:
    """A worker's open loop of 20 connections, 1 s, fused (its reads deferred to the send
    instants): each connection sends what its schedule has due in the window and nothing
    more, every reply is booked once with a latency and a service time, nothing is lost."""
    conns = 20
    with servers.start("echo") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns=str(conns), rate=rate, size="64",
                        framing="len32")
        wl = load("echo")(64, 1)
        worker = Worker(0, plan, wl, [(socket.AF_INET, ("127.0.0.1", srv.port))])
        share = build_shares(plan, plan.steps[0], type(wl), 7)[0]
        worker.connect(share, Poller(), time.monotonic_ns() + 5 * 10**9)
        assert worker.fuse is not None and worker.defers
        begin = time.monotonic_ns() + 10_000_000
        res = worker.run(Times(begin, begin, begin + 10**9))
    want = int(conns * rate)
    # never one more than the schedule has due; fewer when the loop fell behind at the end
    # (a busy machine's: the sends due then never go out), counted as behind
    assert res.sent <= want and (res.sent >= want - conns or res.behind)
    assert res.replies == res.sent_all and res.lost == 0 and res.duplicates == 0
    # every message sent in the window timed once (a reply after its end too), with its
    # service time; "received" counts the replies inside the window only
    assert res.latency.total == res.service.total == res.sent >= res.received
    assert sum(res.errors.values()) == 0


def test_the_fused_loops_keep_no_memory_per_round() -> None:
    """Thousands of fused rounds (C) leave nothing behind: a reference kept by mistake in a
    round (an object of 32 bytes or more each, a round of a few replies) would grow the
    traced memory by tens of bytes a reply; allocations alive at a reading (the echo
    thread's buffer, a list being grown) are a few kB whatever the rounds."""
    st = fresh(seen=1 << 24)
    gids = [1000 + 7 * i for i in range(N)]
    sel = Poller()
    grew, counts = [], []
    with echoed(N) as (ours, _peers):
        for i, s in enumerate(ours):
            sel.register(s, READ, i)
            s.sendall(frames([gids[i]], [i]))
        ctx, buf, out, seq = ctx_of(list(ours), st, gids), bytearray(1 << 20), out_buffer(), N
        tracemalloc.start()
        try:
            for _ in range(3):
                before, replies = tracemalloc.get_traced_memory()[0], 0
                for _ in range(10):
                    now = time.monotonic_ns()
                    acc, last = LOOPS["native"](ctx, sel.ep.fileno(), sel.data, 64, now,
                                                now + 20_000_000, buf, out, st["seen"], 0, seq,
                                                0, 0, BIG)
                    more = last[10] if last is not None and last[0] == fused.ROUND else 0
                    seq, replies = seq + acc[8] + more, replies + acc[1]
                grew.append(tracemalloc.get_traced_memory()[0] - before)
                counts.append(replies)
        finally:
            tracemalloc.stop()
    sel.close()
    assert min(counts) > 500 and sum(grew[1:]) < 4 * sum(counts[1:]) + 16384, (counts, grew)
