"""harness.wire.fused.echo_loop's rounds booked in arrays, given the latency histogram's
counts: C against the pure twin over real sockets on loopback. A round of any size is
booked all or nothing: its latencies bucketed straight into the counts (the same buckets as
Histogram.record), the ledger's marks and the credits as the lists' path books them;
anything it does not take is handed to numpy's parse with nothing changed. The worker uses
it (with C only: the pure build keeps its lists and numpy's parse) in every fused closed
loop; the last test runs one."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from harness import accel
from harness.core.histogram import N_BUCKETS, Histogram, bucket_lower, index_of
from harness.core.result import Times
from harness.run.shares import build_shares
from harness.wire import fused, hot
from harness.wire.poller import READ, Poller
from harness.worker.worker import Worker
from tests import servers
from tests.support import plan_for, tcp_pairs
from tests.test_fused import LOOPS, N, ctx_of, drain, fresh, out_buffer, stamps
from tests.test_hot import HDR, KEY, ME, SIZE
from workloads import load

pytestmark = pytest.mark.skipif(fused.native is None, reason=f"harness._hot: {accel.describe()}")
PER = 5  # frames a connection: N * PER = 30, over MOST (a round the lists would not take)
MOST = 8  # the most frames a round of lists takes here
GIDS = [1000 + 7 * i for i in range(N)]
AGO = 2_000_000  # the frames' intended time: this long before the feed (ns)


def stamped(gid: int, seq0: int, count: int, t: int, delays: list[int] | None = None
            ) -> bytes:
    """``count`` good frames for ``gid`` from ``seq0``, intended at ``t`` (ns)."""
    out = bytearray(SIZE * count)
    for k in range(count):
        out[k * SIZE:k * SIZE + HDR] = (SIZE - HDR).to_bytes(HDR, "big")
    hot.py_build_few_at(memoryview(out), HDR, SIZE, [gid], [count], seq0, [t] * count,
                        delays or [0] * count, ME << 16, KEY)
    return bytes(out)


def feed_all(peers: list[socket.socket], t: int, per: int = PER) -> None:
    for i, p in enumerate(peers):
        p.sendall(stamped(GIDS[i], 100 + per * i, per, t, [i % 3] * per))


def feed_one(peers: list[socket.socket], t: int) -> None:
    feed_all(peers, t, 1)  # (6 frames: a round the lists would take)


def bin_loop(impl: str, feed: Callable[[list[socket.socket], int], None] = feed_all,
             st: dict | None = None, measure: int = 0, since: int | None = None,
             timeout: int = 1 << 62, hist: bool = True, lo: int = 0,
             dtype: type = np.int64) -> tuple:
    """One echo_loop of ``impl`` for 60 ms over N connections whose peers wrote the frames
    (``feed``) and echo nothing: (acc without polls and clock reads, last, the arrays
    after, the histogram's counts (of ``dtype``), the stamps each peer got)."""
    st = st or fresh()
    counts = np.zeros(N_BUCKETS, dtype)
    sel = Poller()
    with tcp_pairs(N) as (ours, peers):
        for i, s in enumerate(ours):
            sel.register(s, READ, i)
        feed(peers, time.monotonic_ns() - AGO)
        time.sleep(0.05)
        ctx = ctx_of(list(ours), st, GIDS, most=MOST)
        handle = sel.ep if impl == "pure" else sel.ep.fileno()
        t0 = time.monotonic_ns()
        stop = t0 + 60_000_000
        acc, last = LOOPS[impl](ctx, handle, sel.data, 64, t0 if since is None else since, stop,
                                bytearray(1 << 20), out_buffer(), st["seen"], lo, 5000, 0,
                                measure, 1 << 62, counts if hist else None, timeout)
        time.sleep(0.05)
        sent = [stamps(b) for b in drain(peers)]
    sel.close()
    polls, replies, t_last, got, lats, _, _, marked, nsent, nbytes, _, _, binned = acc
    assert polls >= 1 and (not replies or t0 <= t_last < stop)
    arrays = {k: v.tolist() for k, v in st.items() if k not in ("progress", "seen")}
    arrays["seen"] = np.flatnonzero(st["seen"]).tolist()
    return ((replies, got, lats, marked, nsent, nbytes, tuple(binned)), last, arrays,
            counts, sent)


def both(**kw: object) -> tuple:
    """The same loop in C and pure: the same counts, state, buckets and sends (the
    latencies' values differ with the clock: their buckets' totals are compared)."""
    a = bin_loop("pure", **kw)  # type: ignore[arg-type]
    b = bin_loop("native", **kw)  # type: ignore[arg-type]
    (ca, la, arr_a, hist_a, sent_a), (cb, lb, arr_b, hist_b, sent_b) = a, b
    assert ca[:6] == cb[:6] and (ca[6][0], ca[6][4]) == (cb[6][0], cb[6][4])
    if la is not None and la[0] == fused.PARSE:  # (without its reads' clock)
        la, lb = la[:3], lb[:3]
    assert la == lb and arr_a == arr_b and sent_a == sent_b
    assert hist_a.sum() == hist_b.sum()
    return a


def consistent(binned: tuple, counts: np.ndarray) -> None:
    """The loop's Binned against the counts it bucketed into."""
    n, total, lo, hi, _ = binned
    nz = np.flatnonzero(counts)
    assert counts.sum() == n and n * lo <= total <= n * hi
    assert (int(nz[0]), int(nz[-1])) == tuple(index_of(np.array([lo, hi])).tolist())


@pytest.mark.parametrize("impl", ["pure", "native"])
@pytest.mark.parametrize("per", [PER, 1])
def test_a_round_of_any_size_is_bucketed_marked_credited_and_answered(impl: str, per: int
                                                                        ) -> None:
    (replies, got, lats, marked, nsent, nbytes, binned), last, arrays, counts, sent = \
        bin_loop(impl, feed_all if per == PER else feed_one,
                 st=fresh() | {"outstanding": np.full(N, per, np.int64)})
    m = N * per
    assert (replies, got, lats, marked, nsent, nbytes) == (m, m, None, m, m, m * SIZE)
    assert last is None and binned[0] == m and binned[4] == 0
    consistent(binned, counts)
    # each latency from its intended time less its delay: at least AGO less 2 µs
    assert binned[2] >= AGO - 2000
    assert arrays["seen"] == list(range(100, 100 + m))
    assert arrays["outstanding"] == [per] * N and arrays["credits"] == [0] * N
    assert sent == [[(GIDS[i], 5000 + per * i + j, ME << 16) for j in range(per)]
                    for i in range(N)]


@pytest.mark.parametrize("per", [PER, 1])
def test_c_and_pure_agree_on_a_round(per: int) -> None:
    r = both(feed=feed_all if per == PER else feed_one,
             st=fresh() | {"outstanding": np.full(N, per, np.int64)})
    consistent(r[0][6], r[3])


def test_the_late_are_counted() -> None:
    (*_, binned), *_ = both(timeout=0)
    assert binned[0] == binned[4] == N * PER


def test_the_buckets_are_the_histograms() -> None:
    """The buckets are Histogram.record's for the same values."""
    (*_, binned), _, _, counts, _ = bin_loop("native")
    h = Histogram()
    nz = np.flatnonzero(counts)
    h.record(np.repeat(bucket_lower(nz), counts[nz]))  # (each bucket's least value)
    assert (h.counts == counts).all()
    consistent(binned, counts)


def _mangled(peers: list[socket.socket], t: int) -> None:
    feed_all(peers, t)
    bad = bytearray(stamped(GIDS[2], 7, 1, t))
    bad[HDR + 9] ^= 4
    peers[2].sendall(bytes(bad))


def _foreign(peers: list[socket.socket], t: int) -> None:
    feed_all(peers, t)
    peers[3].sendall(stamped(GIDS[4], 8, 1, t))


@pytest.mark.parametrize("case", ["mangled", "foreign", "before the window", "past the bitmap",
                                  "before since", "no histogram"])
def test_a_round_not_taken_goes_to_numpys_parse_with_nothing_changed(case: str) -> None:
    kw: dict = {}
    if case == "mangled":
        kw["feed"] = _mangled
    elif case == "foreign":
        kw["feed"] = _foreign
    elif case == "before the window":
        kw["measure"] = time.monotonic_ns() + 10**9
    elif case == "past the bitmap":
        kw["st"] = fresh(seen=120)
    elif case == "before since":
        kw["since"] = 1 << 61
    else:
        kw["hist"] = False
    (replies, got, lats, marked, nsent, nbytes, binned), last, arrays, counts, sent = both(**kw)
    assert (replies, got, lats, marked, nsent, nbytes) == (0, 0, None, 0, 0, 0)
    assert tuple(binned) == tuple(fused.NO_BINS) and not counts.any()
    assert last is not None and last[0] == fused.PARSE
    assert arrays["outstanding"] == [1] * N and arrays["credits"] == [0] * N
    assert arrays["seen"] == [] and sent == [[]] * N


def test_the_native_loop_refuses_a_histogram_of_another_type() -> None:
    with pytest.raises(TypeError, match="hist"):
        bin_loop("native", dtype=np.int32)


@pytest.mark.e2e
def test_a_worker_books_its_binned_rounds_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's closed loop of 20 connections with 16 in flight each against harness's
    echo server, 1 s: the loop buckets nearly every latency itself (counted through a
    wrapper; the rest are the drain's and the window's edges, the usual path's), and every
    message is still booked once: each sent in the window timed once, every reply read,
    nothing lost or duplicated."""
    bins: list[int] = []
    loop: Any = fused.echo_loop

    def counted(*a: Any) -> tuple:
        acc, last = loop(*a)
        bins.append(acc[12][0])
        return acc, last
    monkeypatch.setattr(fused, "echo_loop", counted)
    with servers.start("echo") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="20", inflight=16, size="64",
                        framing="len32")
        wl = load("echo")(64, 1)
        worker = Worker(0, plan, wl, [(socket.AF_INET, ("127.0.0.1", srv.port))])
        share = build_shares(plan, plan.steps[0], type(wl), 7)[0]
        worker.connect(share, Poller(), time.monotonic_ns() + 5 * 10**9)
        assert worker.fuse is not None
        begin = time.monotonic_ns() + 100_000_000
        res = worker.run(Times(begin, begin + 100_000_000, begin + 1_100_000_000))
    assert sum(bins) >= 0.9 * res.latency.total  # (0.997-0.998 in runs alone)
    assert res.replies == res.sent_all and res.lost == 0 and res.duplicates == 0
    # each message sent in the window timed once (a reply after its end too); "received"
    # counts the replies that arrived in the window: those to the 320 in flight when it
    # opened, not those to the 320 in flight when it closed
    assert res.latency.total == res.sent > 0 and abs(res.received - res.sent) <= 20 * 16
    assert res.latency.counts.sum() == res.latency.total and res.late == 0
    assert sum(res.errors.values()) == 0
