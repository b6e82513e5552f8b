"""Small rounds of in-order replies (HTTP, redis) booked in lists: the ring's pop and push and
the early sends' commit in C (harness._hot) against their pure twins and against numpy's
path (InOrder.build and _pop, Pacer.commit), on random rounds; and whole runs against a real
nginx and redis-server, each reply booked once, the lists' path taken and not taken."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest

from harness.core.result import Times, WorkerResult
from harness.run.shares import build_shares
from harness.wire import framing, hot, stamp
from harness.wire.batch import Outbound
from harness.wire.poller import Poller
from harness.wire.protocol import InOrder
from harness.worker.worker import Worker
from tests import nginx as nginx_mod
from tests.support import free_port, plan_for, stop
from tests.test_resp import redis  # noqa: F401  (the fixture: a real redis-server)
from workloads import load
from workloads.base import Kind

KEY, ME = 0x2B1C0DE5, 3
IMPLS = {"pure": (hot.py_ring_pop, hot.py_ring_push, hot.py_commit_closed)}
if hot.native is not None:
    IMPLS["native"] = (hot.native.ring_pop, hot.native.ring_push, hot.native.commit_closed)


def ring_of(n: int, cap: int, rng: np.random.Generator) -> InOrder:
    """An InOrder protocol of ``n`` connections whose rings hold some requests already
    (pushed by numpy's path), with heads past zero so positions wrap."""
    out = Outbound(framing.get("len32"), [Kind("k", 1.0, 64)], [b"f" * 64], KEY, ME, n)
    p = InOrder(framing.get("len32"), out, 1 << 20, KEY, n, ME)
    if cap > p.ring.shape[1]:
        p._grow(cap)
    start = rng.integers(0, 3 * cap, n)
    p.head[:] = start
    p.tail[:] = start
    waiting = rng.integers(0, cap + 1, n)
    idx = np.flatnonzero(waiting)
    if len(idx):
        cnt = waiting[idx]
        gid = (idx * 7 + 1000).repeat(cnt)
        p.build(gid, idx, cnt, int(rng.integers(0, 2**31)), 10**15, 0)
    return p


def state(p: InOrder) -> tuple[bytes, list[int], list[int]]:
    return p.ring.tobytes(), p.head.tolist(), p.tail.tolist()


def random_rings(seed: int) -> Iterator[tuple[int, int, int, InOrder, np.random.Generator]]:
    """300 trials: (trial, connections, ring capacity, a protocol whose rings hold some
    requests, the generator)."""
    rng = np.random.default_rng(seed)
    for trial in range(300):
        n, cap = int(rng.integers(1, 12)), int(2 ** rng.integers(2, 5))
        yield trial, n, cap, ring_of(n, cap, rng), rng


def copy_of(p: InOrder) -> InOrder:
    q = ring_of(len(p.head), 4, np.random.default_rng(0))
    q.ring, q.head, q.tail = p.ring.copy(), p.head.copy(), p.tail.copy()
    return q


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_the_early_sends_stamps_queue_as_numpy_queues_them(impl: str) -> None:
    """ring_push leaves the ring, heads and tails byte for byte as InOrder.build does for
    the same sends (one kind, no delay, each connection's requests at its send time), and
    queues nothing when a queue would outgrow the ring."""
    _pop, push, _commit = IMPLS[impl]
    full = 0
    for trial, n, cap, p, rng in random_rings(5):
        conns = sorted({int(c) for c in rng.integers(0, n, int(rng.integers(1, n + 1)))})
        counts = [int(c) for c in rng.integers(0, 3, len(conns))]
        counts[-1] = max(counts[-1], 1)
        times = [10**15 + int(t) for t in rng.integers(0, 10**9, len(conns))]
        gids = [1000 + 7 * i for i in range(n)]
        seq0 = int(rng.integers(0, 2**32 - 64))
        want, got = copy_of(p), copy_of(p)
        before = state(got)
        total = push(got.ring, got.head, got.tail, conns, counts, times, gids, seq0, ME, KEY)
        idx, cnt = np.asarray(conns, dtype=np.int64), np.asarray(counts, dtype=np.int64)
        if (want.tail[idx] - want.head[idx] + cnt).max() > cap:
            full += 1
            assert total == -1 and state(got) == before, trial
            continue
        want.build(np.asarray(gids, dtype=np.int64)[idx].repeat(cnt), idx, cnt, seq0,
                   np.asarray(times, dtype=np.int64).repeat(cnt), 0)
        assert total == sum(counts) and state(got) == state(want), trial
    assert 20 < full < 280  # both cases were tried


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_a_connection_listed_twice_queues_after_itself_or_not_at_all(impl: str) -> None:
    _pop, push, _commit = IMPLS[impl]
    p = ring_of(3, 4, np.random.default_rng(2))
    p.head[:] = p.tail[:] = [5, 6, 7]
    assert push(p.ring, p.head, p.tail, [1, 2, 1], [1, 1, 2], [10, 20, 30], [7, 8, 9], 100,
                ME, KEY) == 4
    assert p.tail.tolist() == [5, 9, 8]  # (connection 1: 6 + 1 + 2)

    def queued(i: int, pos: range) -> list[tuple[int, int, int]]:
        return [(int(st["seq"]), int(st["t"]), int(st["conn"]))
                for st in (p.ring[i, k % 4] for k in pos)]
    assert queued(1, range(6, 9)) == [(100, 10, 8), (102, 30, 8), (103, 30, 8)]
    assert queued(2, range(7, 8)) == [(101, 20, 9)]
    words = stamp.words_of(p.ring[1][[2, 3, 0]].copy())  # (positions 6-8 of a ring of 4)
    assert (stamp.check_words(words, KEY) == words[:, 0]).all()  # each stamp's check holds
    before = state(p)  # 3 waiting on connection 1, and 2 more do not fit: none goes
    assert push(p.ring, p.head, p.tail, [0, 1, 1], [1, 1, 1], [1, 1, 1], [7, 8, 9], 200, ME,
                KEY) == -1
    assert state(p) == before


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_a_rounds_replies_pop_as_numpy_pops_them_or_nothing_moves(impl: str) -> None:
    """ring_pop gives each reply the stamp numpy's _pop gives it (seq, intended time,
    delay), oldest first per connection, replies of one connection several times over
    included; a round with a reply that has no request waiting pops nothing (None)."""
    pop, _push, _commit = IMPLS[impl]
    short = 0
    for trial, n, _cap, p, rng in random_rings(9):
        p.ring["delay"] = rng.integers(0, 2**32, p.ring.shape, dtype=np.uint64)
        conns = [int(c) for c in rng.integers(0, n, int(rng.integers(1, 2 * n + 2)))]
        got, want = copy_of(p), copy_of(p)
        before = state(got)
        out = pop(got.ring, got.head, got.tail, conns)
        st, ok = want._pop(np.asarray(conns, dtype=np.int64))
        if not ok.all():
            short += 1
            assert out is None and state(got) == before, trial
            continue
        assert out == (st["seq"].tolist(), st["t"].tolist(), st["delay"].tolist()), trial
        assert state(got) == state(want), trial
    assert 20 < short < 280


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_the_early_sends_commit_as_the_closed_loop_commits(impl: str) -> None:
    """commit_closed: credits spent, outstanding grown, progress at the send for an idle
    connection, and outside the window the early count, as ClosedLoop/Pacer.commit do."""
    _pop, _push, commit = IMPLS[impl]
    rng = np.random.default_rng(13)
    for trial in range(300):
        n = int(rng.integers(1, 20))
        arrs = [rng.integers(0, 3, n).astype(np.int64) for _ in range(4)]
        conns = sorted({int(c) for c in rng.integers(0, n, int(rng.integers(1, n + 1)))})
        counts = [int(c) for c in rng.integers(1, 4, len(conns))]
        now, measuring = int(rng.integers(1, 2**62)), bool(trial % 2)
        got = [a.copy() for a in arrs]
        assert commit(conns, counts, now, *got, measuring) == sum(counts)
        cr, out, pr, early = (a.copy() for a in arrs)
        idx, cnt = np.asarray(conns), np.asarray(counts)
        cr[idx] -= cnt
        pr[idx[out[idx] == 0]] = now
        out[idx] += cnt
        if not measuring:
            early[idx] += cnt
        assert all((a == b).all() for a, b in zip(got, (cr, out, pr, early), strict=True))


@pytest.mark.skipif(hot.native is None, reason="harness._hot is not built")
def test_the_c_kernels_refuse_what_they_cannot_take() -> None:
    p = ring_of(2, 4, np.random.default_rng(1))
    with pytest.raises(IndexError):
        hot.native.ring_pop(p.ring, p.head, p.tail, [2])
    with pytest.raises(ValueError):
        hot.native.ring_push(p.ring, p.head, p.tail, [0], [1, 1], [0], [1, 2], 0, ME, KEY)
    with pytest.raises(TypeError):  # a head of another width
        hot.native.ring_pop(p.ring, p.head.astype(np.int32), p.tail, [0])
    with pytest.raises(ValueError):
        hot.native.commit_closed([0], [1, 2], 0, *(np.zeros(2, dtype=np.int64)
                                                   for _ in range(4)), True)


# ----------------------------------------------------------------- whole runs, real servers

SERVER = """
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 100000;
    location = / {{ return 200 "hello\\n"; }}
    location = /missing {{ return 404 "no\\n"; }}
  }}"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if nginx_mod.executable() is None:
        pytest.skip("nginx not installed (tests/setup.sh installs nginx-light)")
    port = free_port()
    proc = nginx_mod.start(tmp_path_factory.mktemp("nginx"), SERVER.format(port=port),
                           (port,), worker_connections=256)
    try:
        yield port
    finally:
        stop(proc)


def nonzero(errors: dict) -> dict:
    return {k: v for k, v in errors.items() if v}


class Counted:
    """Counts the lists' path's calls (harness.wire.hot's ring_pop and ring_push, which
    InOrder.pop_few and push_few call), wrapped for one test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pops = self.pushes = 0
        pop, push = hot.ring_pop, hot.ring_push

        def ring_pop(*a: object) -> object:
            self.pops += 1
            return pop(*a)

        def ring_push(*a: object) -> object:
            self.pushes += 1
            return push(*a)
        monkeypatch.setattr(hot, "ring_pop", ring_pop)
        monkeypatch.setattr(hot, "ring_push", ring_push)


def one_run(mp: pytest.MonkeyPatch, url: str, port: int, ordered: bool,
            seconds: float = 0.6, conns: int = 10, **flags: object
            ) -> tuple[WorkerResult, Counted, int]:
    plan = plan_for(url, conns=str(conns), **flags)
    wl = load(plan.workload)(plan.size, plan.seed)
    w = Worker(0, plan, wl, [(socket.AF_INET, ("127.0.0.1", port))])
    share = build_shares(plan, plan.steps[0], type(wl), 7)[0]
    w.connect(share, Poller(), time.monotonic_ns() + 5 * 10**9)
    assert w.ordered
    w.ordered = ordered
    seen = Counted(mp)
    begin = time.monotonic_ns() + 50_000_000  # a warm-up of 0.2 s, then the window
    res = w.run(Times(begin, begin + 200_000_000, begin + 200_000_000 + int(seconds * 1e9)))
    return res, seen, len(w.tp.early.reqs[1]) if w.tp.early else 0


@pytest.mark.e2e
@pytest.mark.parametrize("ordered", [True, False])
def test_a_keep_alive_run_books_every_response_once_either_way(
        nginx: int, ordered: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A timed closed loop against nginx, its small rounds in lists or through numpy: the
    same exact books. Every request sent had its response, each timed once, counted by
    status, its bytes those of whole responses; the lists' path runs only when asked."""
    res, seen, req_len = one_run(monkeypatch, f"http://127.0.0.1:{nginx}/", nginx,
                                 ordered)
    assert res.replies == res.sent_all > res.sent > 0 and res.lost == res.duplicates == 0
    # (statuses count the responses read while the window is open, by the read: a few
    # more than those received in it, by their arrival, as numpy's path counts them)
    assert sum(res.errors.values()) == 0 and list(res.status) == [200]
    assert res.received <= res.status[200] <= res.replies
    assert res.latency.total == res.sent  # every window request timed, once
    each = res.bytes_received / res.received  # one response's bytes, the same for all
    assert each == int(each) and 100 < each < 400
    assert res.bytes_sent == res.sent * req_len
    assert (seen.pops > 100 and seen.pushes > 100) if ordered else seen.pops == seen.pushes == 0


@pytest.mark.e2e
def test_responses_not_accepted_take_numpys_path_and_count_as_errors(
        nginx: int, monkeypatch: pytest.MonkeyPatch) -> None:
    res, seen, _ = one_run(monkeypatch, f"http://127.0.0.1:{nginx}/missing", nginx, True,
                           seconds=0.3)
    assert seen.pops == 0 and seen.pushes > 0  # (the sends' books are the lists' still)
    assert res.replies == res.sent_all and res.lost == 0 and list(res.status) == [404]
    assert res.errors.get("http_404") == res.status[404] >= res.received > 0


@pytest.mark.e2e
def test_a_ring_that_must_grow_takes_numpys_path_for_that_round(
        nginx: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 in flight on 4 connections: the early sends outgrow the first ring (4 a
    connection): numpy's path grows it; the lists' path goes on after, nothing lost."""
    res, seen, _ = one_run(monkeypatch, f"http://127.0.0.1:{nginx}/", nginx, True, conns=4,
                           inflight=16)
    assert res.replies == res.sent_all > 0 and res.lost == res.duplicates == 0
    assert list(res.status) == [200] and res.latency.total == res.sent
    assert seen.pushes > 0


@pytest.mark.e2e
def test_redis_pings_are_booked_in_lists_and_misses_are_not(
        redis: int, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """PING (one fixed request, +PONG): the lists' path, every reply once. GET of keys
    never set: each reply a miss, which numpy's path counts (redis_miss), one a reply."""
    res, seen, _ = one_run(monkeypatch, f"redis://127.0.0.1:{redis}", redis, True,
                           redis_cmd="ping")
    assert seen.pops > 100 and seen.pushes > 100
    assert res.replies == res.sent_all and res.lost == res.duplicates == 0
    assert nonzero(res.errors) == {} and res.latency.total == res.sent > 0
    res, seen, _ = one_run(monkeypatch, f"redis://127.0.0.1:{redis}", redis, True, seconds=0.3,
                           redis_cmd="get")
    assert seen.pops == 0 and res.replies == res.sent_all and res.lost == 0
    assert nonzero(res.errors) == {"redis_miss": res.errors["redis_miss"]}
    assert res.errors["redis_miss"] >= res.received > 0
