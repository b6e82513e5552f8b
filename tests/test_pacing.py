"""Pacing on synthetic clocks: closed loop, open loop and stages, no sockets."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from harness.core.plan import Pacing
from harness.core.result import Share
from harness.core.units import SEC
from harness.worker import loops
from harness.worker import pacing as pacing_mod
from harness.worker.loops import (
    MAX_BURST,
    ClosedLoop,
    OpenLoop,
)
from harness.worker.pacing import (
    BEHIND_US,
    Pacer,
)
from harness.worker.schedule import (
    PHASE_GRID_NS,
    phase_grid,
)

MS = 1_000_000


def share(n: int, rate: float = 0.0, budget: list[int] | None = None,
          stages: tuple = (), sends: list[bool] | None = None) -> Share:
    return Share(worker=0, gids=np.arange(n), node=np.zeros(n, dtype=np.int64),
                 sends=np.array(sends if sends is not None else [True] * n),
                 budget=None if budget is None else np.array(budget), rate=rate,
                 expect_deliveries=None, key=1, stages=stages)


def alive(n: int) -> np.ndarray:
    return np.ones(n, dtype=bool)


def none(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def pick(p: Pacer, now: int, live: np.ndarray, measuring: bool = True,
         blocked: np.ndarray | None = None) -> tuple[list[int], list[int]]:
    got = p.pick(now, live, none(len(live)) if blocked is None else blocked, measuring)
    return ([], []) if got is None else (got[0].tolist(), got[1].tolist())


def test_closed_loop_fills_each_live_senders_window_then_waits_for_replies() -> None:
    p = Pacer(share(3, sends=[True, True, False]), Pacing(inflight=4), seed=1)
    live = np.array([True, False, True])
    p.start(0, live)
    assert isinstance(p.loop, ClosedLoop)
    assert pick(p, 10, live) == ([0], [4])  # 1 is down, 2 only listens
    assert p.commit(np.array([0]), np.array([4]), 10, measuring=True) == (10, 0, 0)
    assert pick(p, 11, live) == ([], [])
    p.credit(np.array([0, 0]), 20)  # two replies free two slots
    assert pick(p, 21, live) == ([0], [2]) and p.pending(live) == 2


def test_closed_loop_think_time_holds_the_next_send() -> None:
    p = Pacer(share(1), Pacing(inflight=1, think_s=0.005), seed=1)
    p.start(0, alive(1))
    p.commit(*map(np.array, pick(p, 0, alive(1))), 0, measuring=True)
    p.credit(np.array([0]), 1 * MS)
    assert pick(p, 5 * MS, alive(1)) == ([], [])
    assert pick(p, 6 * MS, alive(1)) == ([0], [1])


def test_a_message_budget_caps_sends_inside_the_window_only() -> None:
    p = Pacer(share(2, budget=[3, 0]), Pacing(inflight=8), seed=1)
    p.start(0, alive(2))
    assert pick(p, 0, alive(2), measuring=False) == ([0, 1], [8, 8])  # warm-up: no cap
    assert pick(p, 0, alive(2), measuring=True) == ([0], [3])
    p.commit(np.array([0]), np.array([3]), 0, measuring=True)
    assert not p.budget_left(alive(2))


def test_open_loop_sends_what_the_schedule_made_due_from_the_intended_times() -> None:
    p = Pacer(share(3, rate=1000.0), Pacing(mode="open", rate=1000.0), seed=3)
    assert isinstance(p.loop, OpenLoop) and p.period == MS
    assert (p.phase % PHASE_GRID_NS == 0).all() and (p.phase < MS).all()
    base = 7 * SEC
    p.start(base, alive(3))
    now = base + 10 * MS + 200_000
    idx, counts = pick(p, now, alive(3))
    want = (10 * MS + 200_000 - p.phase) // MS + 1
    assert idx == [0, 1, 2] and counts == want.tolist()
    tint, delay, _ = p.commit(np.array(idx), np.array(counts), now, measuring=True)
    first = base + p.phase[0]
    assert tint[:counts[0]].tolist() == [first + k * MS for k in range(counts[0])]
    assert delay.tolist() == ((now - tint) // 1000).tolist()
    assert pick(p, now, alive(3)) == ([], [])  # nothing more due yet
    assert p.next_send(alive(3)) == base + int((p.phase + p.sched * MS).min())


def test_open_loop_catches_up_at_most_max_burst_a_round_and_skips_blocked() -> None:
    p = Pacer(share(2, rate=1e6), Pacing(mode="open", rate=1e6), seed=1)
    p.start(0, alive(2))
    blocked = np.array([False, True])
    assert pick(p, SEC, alive(2), blocked=blocked) == ([0], [MAX_BURST])


def test_replies_do_not_pace_the_open_loop_and_stalls_time_out() -> None:
    p = Pacer(share(2, rate=100.0), Pacing(mode="open", rate=100.0), seed=1)
    p.start(0, alive(2))
    idx, counts = pick(p, 50 * MS, alive(2))
    p.commit(np.array(idx), np.array(counts), 50 * MS, measuring=True)
    credits = p.credits.tolist()
    p.credit(np.array([0]), 60 * MS)
    assert p.credits.tolist() == credits  # (credits matter only to the closed loop)
    assert pick(p, 60 * MS, alive(2)) == ([0, 1], [1, 1])  # the schedule alone decides
    timeout = 100 * MS
    assert p.stalls(120 * MS, timeout, alive(2)) == 0
    assert p.stalls(161 * MS, timeout, alive(2)) == sum(counts) - 1
    assert p.pending(alive(2)) == 0 and p.credits.tolist() == credits


def test_a_closed_loop_stall_gives_the_credits_back() -> None:
    p = Pacer(share(1), Pacing(inflight=3), seed=1)
    p.start(0, alive(1))
    p.commit(np.array([0]), np.array([3]), 0, measuring=True)
    assert p.stalls(2 * SEC, SEC, alive(1)) == 3
    assert pick(p, 2 * SEC, alive(1)) == ([0], [3])


def test_behind_counts_only_lateness_of_the_clients_own_schedule() -> None:
    p = Pacer(share(2, rate=1000.0), Pacing(mode="open", rate=1000.0), seed=1)
    p.start(0, alive(2))
    p.next_send(alive(2))  # the loop meant to wake at the first due send
    late = (BEHIND_US + 1000) * 1000
    now = p.wake_at + late
    p.backlog[1] = True  # a server kept connection 1 blocked: its lateness is the server's
    idx, counts = pick(p, now, alive(2))
    _, delay, n = p.commit(np.array(idx), np.array(counts), now, measuring=True)
    own = delay[:counts[0]]
    assert n == int((own > BEHIND_US).sum()) > 0
    assert not p.backlog.any()  # both caught up with the schedule


def test_stages_open_retire_and_switch_loops() -> None:
    stages = ((0.0, 2, 0.0), (1.0, 4, 100.0), (2.0, 1, 0.0))
    p = Pacer(share(4, stages=stages), Pacing(inflight=2), seed=1)
    live = np.array([True, True, False, False])
    p.start(0, live)
    assert p.stage_times(5 * SEC) == [6 * SEC, 7 * SEC]
    assert p.enter_stage(6 * SEC, live, has_sock=live) == [2, 3]
    assert isinstance(p.loop, OpenLoop) and p.period == 10 * MS and p.sched_base == 6 * SEC
    p.joined(2, 6 * SEC + 35 * MS)  # connected mid-run: owes nothing from before
    assert p.sched[2] * 10 * MS + p.phase[2] >= 35 * MS
    live[2:] = True
    p.outstanding[1] = 1
    assert p.enter_stage(7 * SEC, live, has_sock=live) == []
    assert isinstance(p.loop, ClosedLoop)
    assert p.retiring.tolist() == [False, True, True, True]
    assert pick(p, 7 * SEC, live) == ([0], [2])
    assert p.retired(7 * SEC + MS, SEC) == [2, 3]  # 1 still awaits a reply
    assert p.retired(8 * SEC + 2 * MS, SEC) == [1]  # ... until the timeout


def test_a_retiring_connection_wanted_again_sends_again() -> None:
    stages = ((0.0, 2, 0.0), (1.0, 1, 0.0), (2.0, 2, 0.0))
    p = Pacer(share(2, stages=stages), Pacing(inflight=1), seed=1)
    p.start(0, alive(2))
    p.commit(np.array([0, 1]), np.array([1, 1]), 0, measuring=True)
    p.enter_stage(SEC, alive(2), alive(2))
    assert p.retiring.tolist() == [False, True]
    p.enter_stage(2 * SEC, alive(2), alive(2))
    assert not p.retiring.any() and p.sends.tolist() == [True, True]
    p.credit(np.array([1]), 2 * SEC)
    assert pick(p, 2 * SEC, alive(2)) == ([1], [1])


@pytest.mark.parametrize("rejoins", [False, True])
def test_a_closed_stage_owes_an_open_stages_backlog(rejoins: bool) -> None:
    """Connection 1 has 5 requests out when a closed stage (1 in flight) takes over, or
    (``rejoins``) when a closed stage wants it back after it began to retire: it sends
    again only after the 5 replies, then 1 at a time, not 5."""
    stages = ((0.0, 2, 100.0), (1.0, 1 if rejoins else 2, 0.0), (2.0, 2, 0.0))
    p = Pacer(share(2, stages=stages), Pacing(inflight=1), seed=1)
    p.start(0, alive(2))
    p.commit(np.array([1]), np.array([5]), 0, measuring=True)
    p.enter_stage(SEC, alive(2), alive(2))
    if rejoins:
        assert p.retiring.tolist() == [False, True]
        p.enter_stage(2 * SEC, alive(2), alive(2))
    assert not p.retiring.any() and p.credits.tolist() == [1, -4]
    for k in range(4):
        p.credit(np.array([1]), 2 * SEC + k)
        assert pick(p, 2 * SEC + k, alive(2)) == ([0], [1])
    p.credit(np.array([1]), 3 * SEC)
    assert pick(p, 3 * SEC, alive(2)) == ([0, 1], [1, 1])


def test_pacing_has_no_clock_and_no_sockets_of_its_own() -> None:
    for module in ("pacing.py", "loops.py", "schedule.py"):  # their sources, also compiled
        tree = ast.parse((Path(pacing_mod.__file__).parent / module).read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"time", "socket", "selectors", "asyncio"}, (module, names)


def owed(p: Pacer, now: int) -> np.ndarray:
    """What the schedule made due by ``now``, per connection, looking at every one."""
    return np.maximum((now - p.sched_base - p.phase) // p.period + 1 - p.sched, 0)


def test_an_open_loop_round_looks_only_at_the_connections_due_since_the_last() -> None:
    n = 10_000
    p = Pacer(share(n, rate=1.0), Pacing(mode="open", rate=1.0), seed=5)
    p.start(0, alive(n))
    p.commit(*p.pick(SEC // 2, alive(n), none(n), True), SEC // 2, measuring=True)
    now = SEC // 2 + 2 * phase_grid(n, 1.0)  # two grid instants later: ~32 of 10,000 are due
    cand = p.wheel.candidates(now)
    due = np.flatnonzero(owed(p, now))
    assert 0 < len(due) < 80 and set(due.tolist()) <= set(cand.tolist())
    assert len(cand) == len(due)  # the order by phase holds exactly the due ones


def test_many_quiet_connections_share_send_instants_on_a_coarser_grid() -> None:
    """Each send instant costs a wake-up: 10,000 connections at 1/s get a 1.6 ms grid (16
    messages an instant, not 5); busy connections keep the 0.5 ms grid, few quiet ones
    stop at 2 ms."""
    assert phase_grid(10_000, 1.0) == 1_600_000
    assert phase_grid(100, 1000.0) == PHASE_GRID_NS
    assert phase_grid(10, 1.0) == 2_000_000
    n = 10_000
    p = Pacer(share(n, rate=1.0), Pacing(mode="open", rate=1.0), seed=5)
    assert (p.phase % 1_600_000 == 0).all()
    per_instant = np.bincount(p.phase // 1_600_000)
    assert 12 < per_instant.mean() < 20 and len(per_instant) == SEC // 1_600_000


def test_the_due_wheel_sends_what_a_scan_of_every_connection_would() -> None:
    """Random rounds, some connections blocked or down a while, a burst cap and a join:
    after every round no live, unblocked sender owes anything (none was missed), and what
    was sent never exceeds the schedule."""
    n, rng = 300, np.random.default_rng(9)
    p = Pacer(share(n, rate=200.0), Pacing(mode="open", rate=200.0), seed=2)
    live = alive(n)
    p.start(10 * SEC, live)
    now = 10 * SEC
    for _ in range(400):
        now += int(rng.integers(0, 3 * MS))
        blocked = rng.random(n) < 0.05
        if rng.random() < 0.05:
            i = int(rng.integers(n))
            live[i] = not live[i]
            if live[i]:
                p.joined(i, now)
        got = p.pick(now, live, blocked, True)
        if got is not None:
            assert len(np.unique(got[0])) == len(got[0])
            p.commit(got[0], got[1], now, measuring=True)
        rest = owed(p, now)
        assert not rest[live & ~blocked].any()
        assert (p.sched <= (now - p.sched_base - p.phase) // p.period + 1).all()
    assert p.sched.sum() > 300 * 200 * 0.5  # ~1 s of schedule, most of it sent


def test_a_blocked_connection_catches_up_once_writable_and_sets_no_past_wake_up() -> None:
    p = Pacer(share(2, rate=1000.0), Pacing(mode="open", rate=1000.0), seed=1)
    p.start(0, alive(2))
    blocked = np.array([True, False])
    now = 20 * MS
    idx, counts = p.pick(now, alive(2), blocked, True)
    p.commit(idx, counts, now, measuring=True)
    assert idx.tolist() == [1]
    # connection 0 owes 20 messages but waits for writability, not for a time: no wake-up
    # in the past (the loop would spin), the next one is the next instant on the schedule
    assert now < p.next_send(alive(2), blocked) <= now + MS
    assert pick(p, now + 1, alive(2)) == ([0], [int(owed(p, now + 1)[0])])


def test_a_connection_joining_mid_run_sends_from_its_next_instant() -> None:
    p = Pacer(share(3, rate=100.0), Pacing(mode="open", rate=100.0), seed=4)
    live = np.array([True, True, False])
    p.start(0, live)
    p.pick(SEC, live, none(3), True)
    live[2] = True
    p.joined(2, SEC + MS)
    first = int(p.phase[2] + p.sched[2] * 10 * MS)
    assert first >= SEC + MS
    assert 2 not in pick(p, first - 1, live)[0]
    assert pick(p, first, live)[0][-1:] == [2]


def test_a_closed_loop_connection_reopened_books_its_next_send_from_when_it_was_due() -> None:
    """A server closed connection 0 while it thought (due at 6 ms); reopened, it sends at
    9 ms with 6 ms as the intended time, so the reopen is in its latency; then as usual."""
    p = Pacer(share(2), Pacing(inflight=1, think_s=0.005), seed=1)
    p.start(0, alive(2))
    p.commit(*map(np.array, pick(p, 0, alive(2))), 0, measuring=True)
    p.credit(np.array([0, 1]), 1 * MS)
    live = np.array([False, True])
    p.closed(0)  # the server's close, between requests
    assert p.due_at(np.array([0])).tolist() == [6 * MS]
    assert pick(p, 8 * MS, live) == ([1], [1])
    p.resume(0, 8 * MS, 6 * MS)
    live[0] = True
    tint, delay, behind = p.commit(np.array([0, 1]), np.array([1, 1]), 9 * MS, True)
    assert np.asarray(tint).tolist() == [6 * MS, 9 * MS] and (delay, behind) == (0, 0)
    p.credit(np.array([0]), 10 * MS)
    assert p.commit(np.array([0]), np.array([1]), 16 * MS, True)[0] == 16 * MS


def test_an_open_loop_connection_reopened_keeps_its_schedule() -> None:
    p = Pacer(share(1, rate=100.0), Pacing(mode="open", rate=100.0), seed=4)
    p.start(0, alive(1))
    p.commit(*map(np.array, pick(p, SEC, alive(1))), SEC, True)
    due = int(p.due_at(np.array([0]))[0])
    p.closed(0)
    assert pick(p, due + 3 * MS, none(1)) == ([], [])
    p.resume(0, due + 3 * MS, due)
    tint, delay, _ = p.commit(*map(np.array, pick(p, due + 3 * MS, alive(1))), due + 3 * MS,
                              True)
    assert np.asarray(tint).tolist() == [due] and np.asarray(delay).tolist() == [3000]


def test_a_small_rounds_credits_in_python_are_what_numpy_gives() -> None:
    for think in (0.0, 0.002):
        a, b = (Pacer(share(4), Pacing(inflight=3, think_s=think), seed=1) for _ in range(2))
        for p in (a, b):
            p.start(0, alive(4))
            p.commit(np.array([0, 1, 2]), np.array([3, 1, 2]), 0, measuring=True)
        own = [0, 1, 1, 3, 0]  # a repeat past what is outstanding, and an idle connection
        a.credit(np.array(own), 5 * MS)
        b.credit_few(own, 5 * MS)
        for name in ("outstanding", "credits", "last_progress", "release_at"):
            assert getattr(a, name).tolist() == getattr(b, name).tolist(), name


def test_a_few_open_loop_candidates_picked_in_python_get_numpys_answer() -> None:
    n, rng = 40, np.random.default_rng(3)
    for measuring in (False, True):
        p = Pacer(share(n, rate=1e5, budget=rng.integers(0, 3, n).tolist()),
                  Pacing(mode="open", rate=1e5), seed=6)
        p.start(0, alive(n))
        live, blocked = rng.random(n) < 0.8, rng.random(n) < 0.2
        now = 50 * MS  # up to 5,000 owed each: the burst cap matters too
        loops.PICK_FEW, few = n, loops.PICK_FEW  # all n are candidates: one at a time
        try:
            got = p.pick_few(now, live, blocked, measuring)
        finally:
            loops.PICK_FEW = few
        due = owed(p, now)
        if measuring:
            due = np.minimum(due, p.budget)
        want = np.where(live & ~blocked, np.minimum(due, MAX_BURST), 0)
        assert got is not None and isinstance(got[0], list)
        assert got[0] == np.flatnonzero(want).tolist()
        assert got[1] == want[want > 0].tolist()
        lag = live & (due > want)
        assert p.wheel.laggards.tolist() == np.flatnonzero(lag).tolist()


def test_a_small_open_loop_round_committed_in_python_is_what_numpy_commits() -> None:
    n = 6
    for measuring, late in ((False, 0), (True, 0), (True, (BEHIND_US + 1000) * 1000)):
        a, b = (Pacer(share(n, rate=1000.0, budget=[5] * n), Pacing(mode="open", rate=1000.0),
                      seed=2) for _ in range(2))
        for p in (a, b):
            p.start(0, alive(n))
            p.commit(np.array([1]), np.array([1]), 0, measuring)  # one already outstanding
            p.backlog[[0, 3]] = True
            p.next_send(alive(n))
        now = 3 * MS + late
        idx, counts = [0, 1, 3, 4], [1, 2, 1, 3]
        tint, delay, behind = a.commit(np.array(idx), np.array(counts), now, measuring)
        got = b.commit_few(idx, counts, now, measuring)
        assert got == (np.broadcast_to(tint, len(delay)).tolist(),
                       np.broadcast_to(delay, len(tint)).tolist(), behind)
        assert not late or behind > 0
        for name in ("sched", "outstanding", "last_progress", "budget", "backlog"):
            assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
