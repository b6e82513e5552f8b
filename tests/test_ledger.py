"""The echo ledger on synthetic seqs: the plain-Python path of small rounds against numpy's."""

from __future__ import annotations

import numpy as np

from harness.core.ledger import EchoLedger


def test_a_small_rounds_seqs_in_python_are_what_numpy_gives() -> None:
    rounds = [[3, 4], [9, 10, 10], [1 << 17], [0, 2, 11], [5]]  # warm-up, a repeat, growth
    a, b = EchoLedger(), EchoLedger()
    a.start(4)
    b.start(4)
    for seqs in rounds:
        a.record(np.array(seqs, dtype=np.uint32))
        b.record_few(list(seqs))
    assert a.receipts == b.receipts == 7
    assert a.finish(1 << 18) == b.finish(1 << 18)


def test_a_broadcast_window_judges_another_machines_stamps_in_our_clock() -> None:
    from harness.core.ledger import BroadcastLedger
    from harness.wire import stamp
    ahead = 10**14  # workers 2.. are on a machine whose monotonic clock is this far ahead
    ledger = BroadcastLedger(np.zeros(2, dtype=np.int64), 1)
    ledger.start(1000, ((0, 0), (2, -ahead)))
    t = np.array([999, 1000, ahead + 999, ahead + 1000], dtype=np.uint64)
    st = stamp.make(np.zeros(4), np.arange(4), np.zeros(4), np.array([1, 1, 2, 3]),
                    np.zeros(4), t, key=5)
    # before the window in their own clocks: the first of each machine is not counted
    assert ledger.record(np.array([0, 1, 0, 1]), st, t.astype(np.int64)) == 2
    part = ledger.finish()
    assert sorted((part.msg_key >> np.uint64(32)).tolist()) == [1, 3]


def test_a_broadcast_drain_waits_for_distinct_deliveries_not_duplicates() -> None:
    # a --messages step awaiting 4 deliveries: 4 that hold a duplicate are not all in (the
    # drain would end early and count the one still on its way as lost); the 4th distinct
    # one ends it
    from harness.wire import stamp
    from harness.worker.delivery import RECOUNT_NS, Broadcast
    b = Broadcast(0, np.arange(2, dtype=np.int64), np.zeros(2, dtype=np.int64), 1, 4)
    b.start(0, 1000)

    def deliver(recv: list[int], seqs: list[int]) -> None:
        n = len(seqs)
        t = np.full(n, 2000, dtype=np.uint64)
        st = stamp.make(np.zeros(n), np.array(seqs), np.zeros(n), np.zeros(n), np.zeros(n), t,
                        key=5)
        b.record(np.array(recv, dtype=np.int64), st, t.astype(np.int64))

    stop = 10**9  # sending stopped at 1 s (drain_until = stop + timeout)
    deliver([0, 1, 0, 0], [1, 1, 2, 2])  # message 2 reached receiver 0 twice, receiver 1 not
    assert (b.deliveries, b.drained(stop, stop + 5 * 10**9, 5 * 10**9, False, stop, 1.0)) \
        == (4, False)
    deliver([1], [2])
    assert not b.drained(stop + 1, stop + 5 * 10**9, 5 * 10**9, False, stop, 1.0)  # (recount
    assert b.drained(stop + RECOUNT_NS, stop + 5 * 10**9, 5 * 10**9, False, stop, 1.0)  # later)
    assert b.ledger.finish().node_dups.tolist() == [1]


def test_a_closed_loop_broadcast_times_deliveries_from_the_send() -> None:
    """A closed loop's message is intended at its round's clock read; its delay is how long
    after that its send went out: its fan-out runs from the send. An open loop's runs from
    the intended time (coordinated omission), whatever the delay."""
    from harness.core.ledger import BroadcastLedger
    from harness.wire import stamp
    t = np.full(2, 5000, dtype=np.uint64)
    st = stamp.make(np.zeros(2), np.arange(2), np.zeros(2), np.zeros(2), np.array([0, 3]), t,
                    key=5)
    for from_send, want in ((True, [5000, 8000]), (False, [5000, 5000])):
        ledger = BroadcastLedger(np.zeros(2, dtype=np.int64), 1)
        ledger.from_send = from_send
        ledger.start(1000)
        assert ledger.record(np.array([0, 1]), st, np.full(2, 9000, dtype=np.int64)) == 2
        assert sorted(ledger.finish().msg_t.tolist()) == want
