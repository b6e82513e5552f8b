"""The echo ledger on synthetic seqs: the plain-Python path of small rounds against numpy's."""

from __future__ import annotations

import numpy as np

from harness.ledger import EchoLedger


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
