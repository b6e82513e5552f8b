"""Recording on synthetic arrays: the measure window, histograms, the per-second series."""

from __future__ import annotations

import os

import numpy as np

from harness.core.result import Times
from harness.core.units import SEC
from harness.wire import stamp
from harness.worker.recording import Recorder

MS = 1_000_000


def stamps(t_intended: list[int], delay_us: int = 0, kind: int = 0) -> np.ndarray:
    st = np.zeros(len(t_intended), dtype=stamp.BIN_DTYPE)
    st["t"] = t_intended
    st["delay"] = delay_us
    st["kind"] = kind
    return st


def recorder(end: int | None = 3 * SEC, kinds: int = 1) -> Recorder:
    rec = Recorder(worker=2, conns=4, n_kinds=kinds, fixed=64)
    rec.begin(Times(0, SEC, end), timeout_ns=100 * MS)
    rec.start_measure()
    return rec


def test_only_replies_inside_the_window_count_and_only_window_stamps_give_latency() -> None:
    rec = recorder()
    t = np.array([SEC - 1, SEC + 5 * MS, 2 * SEC, 3 * SEC])
    st = stamps([SEC - 2 * MS, SEC + 3 * MS, 2 * SEC - 200 * MS, 3 * SEC - MS])
    rec.received(st, t, np.full(4, 64), int(t[-1]), open_loop=False)
    assert rec.res.received == 2 and rec.res.bytes_received == 128  # t in [1 s, 3 s)
    assert rec.res.latency.total == 3  # the reply to a warm-up message gives none
    assert rec.res.late == 1  # 200 ms, over the 100 ms timeout
    assert rec.res.service.total == 0


def test_open_loop_keeps_service_time_beside_latency() -> None:
    rec = recorder()
    t = np.array([SEC + 10 * MS])
    rec.received(stamps([SEC], delay_us=4000), t, np.array([64]), int(t[0]), open_loop=True)
    assert abs(rec.res.latency.percentile(50) - 10 * MS) <= 0.01 * 10 * MS
    assert abs(rec.res.service.percentile(50) - 6 * MS) <= 0.01 * 6 * MS


def test_each_kind_has_its_own_histogram() -> None:
    rec = recorder(kinds=2)
    st = np.concatenate([stamps([SEC] * 3, kind=0), stamps([SEC], kind=1)])
    t = np.array([SEC + MS] * 3 + [SEC + 9 * MS])
    rec.received(st, t, np.full(4, 64), int(t[-1]), open_loop=False)
    assert [h.total for h in rec.res.kinds] == [3, 1]


def test_the_series_has_one_row_per_second_of_the_window() -> None:
    rec = recorder(end=None)  # calls in time order, as the loop makes them
    rec.sent(5, 320, np.zeros(5, dtype=np.uint16), SEC + 10)
    rec.received(stamps([SEC]), np.array([SEC + MS]), np.array([64]), SEC + MS, False)
    rec.error("reset", 1, 2 * SEC + 10)
    rec.sent(2, 128, np.zeros(2, dtype=np.uint16), 3 * SEC + 10)
    rec.received(stamps([3 * SEC]), np.array([3 * SEC + MS]), np.array([64]), 3 * SEC + MS,
                 False)
    res = rec.finish(os.times())
    assert res.series["sent"].tolist() == [5, 0, 2]
    assert res.series["received"].tolist() == [1, 0, 1]
    assert res.series["errors"].tolist() == [0, 1, 0]
    assert [h.total for h in res.sec_hists] == [1, 0, 1]
    assert res.sent == 7 and res.first_send == SEC + 10 and res.last_send == 3 * SEC + 10


def test_nothing_before_the_window_is_counted_but_errors() -> None:
    rec = Recorder(worker=0, conns=1, n_kinds=1, fixed=None)
    rec.begin(Times(0, SEC, 2 * SEC), timeout_ns=SEC)
    rec.sent(3, 192, np.zeros(3, dtype=np.uint16), 10)
    rec.error("timeout", 2, 10)
    assert rec.res.sent == 0 and rec.res.errors["timeout"] == 2 and rec.series["errors"] == []


def test_broadcast_open_loop_counts_sent_by_stamp_time() -> None:
    rec = recorder()
    tint = np.array([SEC - MS, SEC - 1, SEC, SEC + MS])
    ends = np.array([64, 128, 200, 264])
    rec.sent_by_stamp(tint, ends, np.zeros(4, dtype=np.uint16), SEC + 2 * MS)
    assert rec.res.sent == 2 and rec.res.bytes_sent == (200 - 128) + (264 - 200)


def test_closed_loop_latency_runs_from_the_send_its_delay_says() -> None:
    """A closed loop's message is intended at its round's clock read, and its delay is how
    long after that its send went out (the send's lag in the round): latency runs from the
    send, in both the numpy and the small-round path."""
    t = [SEC + 10 * MS, SEC + 20 * MS]
    for small in (False, True):
        rec = recorder()
        st = stamps([SEC, SEC])
        st["delay"] = [0, 3000]
        if small:
            rec.received_few(t, [SEC, SEC], [0, 3000], t[-1], False)
        else:
            rec.received(st, np.array(t), np.full(2, 64), t[-1], open_loop=False)
        lat = rec.res.latency
        assert abs(lat.min - 10 * MS) <= 0.01 * 10 * MS, small  # no lag: from the clock read
        assert abs(lat.max - 17 * MS) <= 0.01 * 17 * MS, small  # sent 3 ms into the round
        assert rec.res.service.total == 0


def test_a_small_round_recorded_in_python_gives_what_numpy_gives() -> None:
    t = [SEC - 1, SEC + 5 * MS, 2 * SEC, 3 * SEC]
    tint = [SEC - 2 * MS, SEC + 3 * MS, 2 * SEC - 200 * MS, 3 * SEC - MS]
    delay = [0, 1500, 20, 7]
    for open_loop in (False, True):
        st = stamps(tint)
        st["delay"] = delay
        a, b = recorder(), recorder()
        a.received(st, np.array(t), np.full(4, 64), t[-1], open_loop)
        b.received_few(t, tint, delay, t[-1], open_loop)
        for name in ("received", "bytes_received", "late"):
            assert getattr(a.res, name) == getattr(b.res, name), name
        for h in ("latency", "service"):
            ha, hb = getattr(a.res, h), getattr(b.res, h)
            assert ha.total == hb.total and (ha.counts == hb.counts).all(), h
        assert a.series == b.series


def test_a_count_stamped_before_the_window_opened_goes_to_its_first_second() -> None:
    """A kernel arrival stamp may fall before the window opened, where the read that took
    it came after: the series counts it in the window's first second (it once failed the
    worker with an IndexError)."""
    rec = recorder()
    rec.error("protocol", 2, SEC - MS)
    rec.received(stamps([SEC - 5 * MS]), np.array([SEC - MS]), np.array([64]), SEC - MS,
                 open_loop=False)
    assert rec.series["errors"] == [2] and rec.series["received"] == [0]
    assert rec.res.errors["protocol"] == 2


def test_status_codes_are_counted_by_code_one_or_many_a_round() -> None:
    rec = recorder()
    rec.statuses(np.array([200, 200, 200]))  # one code: counted without np.unique
    rec.statuses(np.array([404, 200, 503, 404]))
    rec.statuses(np.zeros(0, dtype=np.int64))
    assert rec.res.status == {200: 4, 404: 2, 503: 1}
