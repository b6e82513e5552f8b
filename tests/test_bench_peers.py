"""tests/bench/peers.py's report: a peer's round that did not hold the asked rate is not
compared with harness (synthetic figures; the tool itself is not a test)."""

from __future__ import annotations

from tests.bench.peers import LOADS, Figure, report


def test_a_tcpkali_round_off_the_asked_rate_is_left_out_and_said() -> None:
    load = LOADS["open100x1000"]  # 100,000 msgs/s asked
    h = [Figure(100_000, 90.0, user_pct=20.0, sys_pct=70.0)]
    held = Figure(101_000, 75.0, user_pct=3.0, sys_pct=72.0)
    over = Figure(155_275, 99.2, user_pct=2.0, sys_pct=97.2)
    out = report(load, [held, over], h, [])
    assert "tcpkali   101,000 msgs/s" in out  # its median: the round that held the rate
    assert "CPU µs/msg 1.21" in out  # 9.00 / 7.43
    assert "1 round(s) off the asked 100,000 msgs/s by over 10%, left out: 155,275" in out
    assert "NOT LIKE FOR LIKE" not in out
    none = report(load, [over], h, [])  # none held it: compared, and flagged
    assert "CPU µs/msg 1.41 (NOT LIKE FOR LIKE: no tcpkali round held the rate)" in none


def test_a_closed_loads_rounds_all_count() -> None:
    load = LOADS["closed100x16"]
    out = report(load, [Figure(2_000_000, 99.0, user_pct=5.0, sys_pct=94.0)],
                 [Figure(1_500_000, 99.0, user_pct=30.0, sys_pct=69.0)], [])
    assert "left out" not in out and "harness/tcpkali: msgs/s 0.75" in out
