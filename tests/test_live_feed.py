"""harness.report.live.feed without sockets: seconds merged exactly from workers' progress rows
(nonzero buckets added, percentiles once), none lost when a row is replaced before the
coordinator passes it on, each record built once whatever the number of viewers."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from harness.core.histogram import Histogram, from_counts, index_of
from harness.report.live.feed import Feed, StepMerge, cpu_flags, percentiles_ms, step_records

SEC = 10**9


def part(sec: int, values: np.ndarray, sent: int = 0) -> tuple:
    counts = np.bincount(index_of(values), minlength=1)
    nz = np.flatnonzero(counts)
    return (sec, sent, len(values), 0, nz.astype(np.uint16), counts[nz].astype(np.int32))


def row(worker: int, parts: list[tuple], at: int = 0, cpu_s: float = 0.0) -> dict:
    return {"worker": worker, "open": 2, "seconds": parts, "at": at, "cpu_s": cpu_s,
            "wait_ns": 0, "kinds": {}, "reconnects": 0}


def test_a_second_is_merged_once_every_worker_has_closed_it_and_exactly() -> None:
    rng = np.random.default_rng(7)
    a0, b0 = rng.integers(10**4, 10**7, 500), rng.integers(10**5, 10**8, 300)
    m = StepMerge(0)
    assert m.rows([row(0, [part(0, a0)]), row(1, [])]) == []  # worker 1 has not closed it
    (rec,) = m.rows([row(0, [part(0, a0)]), row(1, [part(0, b0)])])
    whole = Histogram()
    whole.record(np.concatenate([a0, b0]))
    assert rec["received"] == 800 and rec["n"] == 800
    assert rec["p"] == percentiles_ms(from_counts(whole.counts))
    assert rec["cum"] == rec["p"]


def test_a_row_replaced_before_it_was_passed_on_loses_no_second() -> None:
    """Worker 0's row for second 0 never reaches the feed; its next row carries second 0
    again (PROGRESS_SECONDS), so second 0 is whole."""
    v = np.full(10, 2 * 10**6)
    m = StepMerge(0)
    recs = m.rows([row(0, [part(0, v), part(1, v)]), row(1, [part(0, v), part(1, v)])])
    assert [r["received"] for r in recs] == [20, 20]


def test_the_final_records_are_those_of_the_merged_series_with_the_live_extras_kept() -> None:
    h = Histogram()
    h.record(np.array([10**6, 3 * 10**6]))
    series = {"second": [0, 1], "sent": [2, 0], "received": [2, 0], "errors": [0, 1]}
    m = StepMerge(3)
    m.live[0] = {"open": 5}
    recs = m.final(series, [h, Histogram()])
    assert recs == [dict(r, final=True, **({"open": 5} if r["s"] == 0 else {}))
                    for r in step_records(3, series, [h, Histogram()])]
    assert recs[1]["p"] == [None] * 5 and recs[1]["cum"] == recs[0]["cum"]


def test_cpu_is_per_worker_per_interval_and_flags_follow_the_client_bound_rules() -> None:
    m = StepMerge(0)
    m.rows([row(0, [], at=SEC, cpu_s=1.0)])
    extras = m._extras([row(0, [], at=2 * SEC, cpu_s=1.95)], None)
    assert extras["cpu"]["w0"]["cpu"] == 95.0
    assert extras["cpu"]["w0"]["flags"] == ["CLIENT-BOUND"]
    assert cpu_flags(20, 15) == ["SHARED CORE"] and cpu_flags(50, 5) == []


def test_each_record_is_built_once_whatever_the_number_of_viewers() -> None:
    feed = Feed()
    got: list[int] = []

    def view() -> None:
        have, closed = 0, False
        while not closed:
            events, closed = feed.wait(have, 0.05)
            have += len(events)
        got.append(have)

    viewers = [threading.Thread(target=view) for _ in range(8)]
    for t in viewers:
        t.start()
    step = SimpleNamespace(index=0, conns=2)
    v = np.full(4, 10**6)
    for sec in range(5):
        feed.progress(step, [row(0, [part(sec, v)])])
    feed.close()
    for t in viewers:
        t.join(5)
    assert feed.built == 5
    assert got == [len(feed.events)] * 8  # step_start and 5 seconds, each shared


def test_errors_by_kind_seen_between_two_seconds_go_to_the_next_one_published() -> None:
    v = np.full(2, 10**6)
    m = StepMerge(0)
    first = row(0, [part(0, v)])
    m.rows([first])
    m.rows([dict(first, kinds={"reset": 2})])  # no second closes: nothing published
    (rec,) = m.rows([dict(row(0, [part(0, v), part(1, v)]), kinds={"reset": 3})])
    assert rec["s"] == 1 and rec["kinds"] == {"reset": 3}
