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
