"""harness.analysis.capacity on synthetic summaries and series: no sockets, no processes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from harness.analysis.capacity import CLIENT_BOUND, SHARED_CORE, next_load, search
from harness.analysis.slo import GRAMMAR, Clause, Slo, SloError, parse_percent, parse_slo, slo_check
from harness.analysis.trends import recovery_time, soak_verdict


def summary(p99: float | None = 1.0, throughput: float = 1000.0, sent: int = 1000,
            timeouts: int = 0, lost: int = 0, conns: int = 10, client_bound: bool = False,
            p50: float | None = None) -> dict:
    """A step summary with the documented keys (latency in ms, throughput in msgs/s).
    ``timeouts``: messages answered later than --timeout (``late``), each a failed message."""
    lat = {k: None for k in ("p50", "p90", "p95", "p99", "p999", "max", "mean")}
    if p99 is not None:
        lat = {"p50": p50 if p50 is not None else p99 / 2, "p90": p99 * 0.8,
               "p95": p99 * 0.9, "p99": p99, "p999": p99 * 1.5, "max": p99 * 2,
               "mean": p99 / 2}
    errors = {"connect_refused": 0, "connect_timeout": 0, "reset": 0, "closed": 0,
              "timeout": timeouts, "protocol": 0}
    return {"conns": conns, "sent": sent, "received": sent - lost,
            "throughput_msgs_s": throughput, "latency_ms": lat, "errors": errors,
            "lost": lost, "late": timeouts, "client_bound": client_bound, "partial": False}


# ---------------------------------------------------------------------------- parse_slo


@pytest.mark.parametrize(("text", "metric", "op", "value"), [
    ("p99<5ms", "p99", "<", 5.0),
    ("p99 < 5 ms", "p99", "<", 5.0),
    ("p50<=1", "p50", "<=", 1.0),
    ("p90<2.5ms", "p90", "<", 2.5),
    ("p95 <= 500us", "p95", "<=", 0.5),
    ("p95 <= 500µs", "p95", "<=", 0.5),
    ("p999<0.1s", "p999", "<", 100.0),
    ("max<1 s", "max", "<", 1000.0),
    ("mean>.5ms", "mean", ">", 0.5),
    ("P99<5MS", "p99", "<", 5.0),
    ("errors<0.1%", "errors", "<", 0.001),
    ("errors <= 0.002", "errors", "<=", 0.002),
    ("errors<1e-3", "errors", "<", 0.001),
    ("throughput>=10000", "throughput", ">=", 10000.0),
    ("throughput > 2.5e4/s", "throughput", ">", 25000.0),
    ("throughput>100 msgs/s", "throughput", ">", 100.0),
])
def test_parse_single_clause(text: str, metric: str, op: str, value: float) -> None:
    slo = parse_slo(text)
    assert len(slo.clauses) == 1
    c = slo.clauses[0]
    assert (c.metric, c.op) == (metric, op)
    assert c.value == pytest.approx(value)


@pytest.mark.parametrize("text", [
    "p99 < 5 ms and p50<=1ms",
    "p99<5ms,p50<=1ms",
    "p99<5ms , p50 <= 1 ms",
    "p99<5ms AND p50<=1ms",
])
def test_parse_conjunctions(text: str) -> None:
    slo = parse_slo(text)
    assert [(c.metric, c.op, c.value) for c in slo.clauses] == [("p99", "<", 5.0),
                                                               ("p50", "<=", 1.0)]


def test_parse_three_kinds_and_str() -> None:
    slo = parse_slo("p99<5ms, errors<0.1% and throughput>=10000")
    assert [c.metric for c in slo.clauses] == ["p99", "errors", "throughput"]
    assert str(slo) == "p99 < 5 ms and errors < 0.1% and throughput >= 10000 msgs/s"


def test_slo_is_frozen_and_slotted() -> None:
    slo = parse_slo("p99<5ms")
    with pytest.raises(dataclasses.FrozenInstanceError):
        slo.clauses = ()  # type: ignore[misc]
    assert not hasattr(slo, "__dict__") and not hasattr(slo.clauses[0], "__dict__")
    assert slo == Slo((Clause("p99", "<", 5.0, "ms"),))


@pytest.mark.parametrize("text", [
    "", "   ", "p99", "p99<", "<5ms", "p98<5ms", "latency<5ms", "p99 == 5ms", "p99=5ms",
    "p99<5kb", "p99<5 msx", "p99<-1ms", "p99<5ms,", ",p99<5ms", "p99<5ms and",
    "p99<5ms,,p50<1ms", "errors<150%", "errors<2", "errors<0.1ms", "throughput>10ms",
    "throughput>10%", "p99<abc", "p99<5ms or p50<1ms",
])
def test_parse_rejects_bad_expressions(text: str) -> None:
    with pytest.raises(SloError) as exc:
        parse_slo(text)
    assert isinstance(exc.value, ValueError)
    assert "\n" not in str(exc.value)  # one line; the grammar is in `search --help`
    assert GRAMMAR not in str(exc.value)


def test_grammar_names_every_metric_and_op() -> None:
    for word in ("p50", "p90", "p95", "p99", "p999", "max", "mean", "errors", "throughput",
                 "<=", ">=", "us", "ms", "%", "/s"):
        assert word in GRAMMAR


# ---------------------------------------------------------------------------- parse_percent


@pytest.mark.parametrize(("text", "rate"), [
    ("0.1%", 0.001), ("0.002", 0.002), ("5 %", 0.05), ("0", 0.0), ("100%", 1.0), ("1", 1.0),
    (" 2.5% ", 0.025),
])
def test_parse_percent(text: str, rate: float) -> None:
    assert parse_percent(text) == pytest.approx(rate)


@pytest.mark.parametrize(("text", "words"), [
    ("", "not a rate"), ("abc", "not a rate"), ("%", "not a rate"), ("-1%", ">= 0"),
    ("nan", ">= 0"), ("150%", "above 100%"), ("5", "did you mean 5%"),
])
def test_parse_percent_rejects(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_percent(text)


# ---------------------------------------------------------------------------- slo_check


def test_slo_check_passes() -> None:
    slo = parse_slo("p99<5ms and errors<0.1% and throughput>=900")
    assert slo_check(summary(p99=4.9, throughput=900.0), slo) == (True, [])


def test_slo_check_readable_violations() -> None:
    slo = parse_slo("p99<5ms and p50<=1ms, errors<0.1%, throughput>=10000")
    ok, why = slo_check(summary(p99=7.2, p50=1.5, throughput=9000.0, timeouts=3), slo)
    assert not ok
    assert why == ["p99 7.2 ms >= 5 ms", "p50 1.5 ms > 1 ms", "errors 0.3% >= 0.1%",
                   "throughput 9000 msgs/s < 10000 msgs/s"]


def test_slo_check_shows_the_users_unit() -> None:
    ok, why = slo_check(summary(p99=0.72), parse_slo("p99<500us"))
    assert not ok and why == ["p99 720 us >= 500 us"]
    ok, why = slo_check(summary(p99=1500.0), parse_slo("p99 <= 1s"))
    assert why == ["p99 1.5 s > 1 s"]


def test_slo_check_boundaries() -> None:
    assert slo_check(summary(p99=5.0), parse_slo("p99<=5ms"))[0]
    assert not slo_check(summary(p99=5.0), parse_slo("p99<5ms"))[0]
    assert slo_check(summary(throughput=100.0), parse_slo("throughput>=100"))[0]
    assert not slo_check(summary(throughput=100.0), parse_slo("throughput>100"))[0]


def test_slo_check_no_latency_data_fails_latency_clauses() -> None:
    s = summary(p99=None)
    ok, why = slo_check(s, parse_slo("p99<5ms and throughput>=0"))
    assert not ok and len(why) == 1 and why[0].startswith("p99: no data")
    assert "p99 < 5 ms" in why[0]


def test_slo_check_max_errors_counts_lost_too() -> None:
    slo = parse_slo("p99<5ms")
    assert slo_check(summary(timeouts=1), slo, max_errors=0.001) == (True, [])
    ok, why = slo_check(summary(timeouts=1, lost=1), slo, max_errors=0.001)
    assert not ok and why == ["errors 0.2000% > 0.1000% (max errors)"]


# ---------------------------------------------------------------------------- search


def server_model(capacity: float, seed: int = 7, client_limit: float = math.inf):
    """probe(load): p99 ~1 ms (5% noise) up to ``capacity``, ~50 ms above it; client-bound
    above ``client_limit``. Records every load it was asked for in ``probe.loads``."""
    rng = np.random.default_rng(seed)
    loads: list[float] = []

    def probe(load: float) -> dict:
        loads.append(load)
        noise = float(rng.uniform(0.95, 1.05))
        p99 = (1.0 if load <= capacity else 50.0) * noise
        return summary(p99=p99, throughput=min(load, capacity) * 100,
                       client_bound=load > client_limit)

    probe.loads = loads  # type: ignore[attr-defined]
    return probe


SLO_5MS = parse_slo("p99<5ms")


@pytest.mark.parametrize("capacity", [3.3, 37.0, 150.0, 1234.5, 9000.0])
def test_search_finds_capacity_within_tolerance(capacity: float) -> None:
    r = search(server_model(capacity), 1.0, 20000.0, SLO_5MS, None, tolerance=0.05)
    assert r["converged"] and not r["hi_passed"] and not r["lo_failed"]
    lo_ok, hi_bad = r["bracket"]
    assert lo_ok == r["max_load"] <= capacity < hi_bad
    assert hi_bad - lo_ok <= 0.05 * lo_ok
    assert r["max_load"] >= capacity / 1.05
    assert len(r["probes"]) <= 12
    assert all(p["ok"] == (p["load"] <= capacity) for p in r["probes"])
    best = max(p["load"] for p in r["probes"] if p["ok"])
    assert r["max_load"] == best


@pytest.mark.parametrize("capacity", [1, 2, 7, 100, 999, 4321])
def test_search_integer_loads(capacity: int) -> None:
    probe = server_model(capacity)
    r = search(probe, 1, 5000, SLO_5MS, None, tolerance=1e-9, max_probes=40, integer=True)
    assert all(isinstance(x, int) for x in probe.loads)
    assert len(set(probe.loads)) == len(probe.loads)  # never probes a load twice
    # a tolerance finer than one connection: stops only when the bracket is two neighbours
    assert r["converged"] and r["max_load"] == capacity
    assert r["bracket"] == [capacity, capacity + 1]
    r = search(server_model(capacity), 1, 5000, SLO_5MS, None, tolerance=0.01, integer=True)
    lo_ok, hi_bad = r["bracket"]
    assert r["converged"] and lo_ok == r["max_load"] <= capacity < hi_bad
    assert hi_bad - lo_ok <= max(1, 0.01 * lo_ok) and len(r["probes"]) <= 12


def test_search_integer_rounds_the_ends_and_stops_when_bracket_cannot_shrink() -> None:
    probe = server_model(10)
    r = search(probe, 9.6, 11.4, SLO_5MS, None, tolerance=1e-9, integer=True)
    assert probe.loads == [10, 11]
    assert r["converged"] and r["max_load"] == 10 and r["bracket"] == [10, 11]


def test_search_goes_down_when_lo_fails_and_bisects_below_it() -> None:
    probe = server_model(6.0)
    r = search(probe, 10.0, 1000.0, SLO_5MS, None)
    assert probe.loads[:2] == [10.0, 5.0]  # lo failed: halve until a probe passes
    assert 1000.0 not in probe.loads
    assert r["lo_failed"] and r["searched_down"] and r["converged"]
    assert r["probes"][0]["violations"][0].startswith("p99 ")
    assert 6.0 / 1.05 <= r["max_load"] <= 6.0 and r["bracket"][1] <= 10.0


def test_search_down_stops_at_the_floor() -> None:
    probe = server_model(0.01)
    r = search(probe, 10.0, 1000.0, SLO_5MS, None)
    assert probe.loads == [10.0, 5.0, 2.5, 1.25, 0.625, 0.3125, 0.15625]
    assert r["max_load"] is None and r["lo_failed"] and not r["converged"]
    assert r["floor"] == 10.0 / 64 and r["bracket"] == [None, 0.15625]
    probe = server_model(0)
    r = search(probe, 8, 100, SLO_5MS, None, integer=True)
    assert probe.loads == [8, 4, 2, 1] and r["floor"] == 1 and r["max_load"] is None


def test_search_probes_readable_loads() -> None:
    probe = server_model(1234.5)
    search(probe, 1.0, 20000.0, SLO_5MS, None, tolerance=0.05)
    assert all(float(f"{x:.3g}") == x for x in probe.loads)  # 3 significant digits


def test_search_stops_when_hi_passes() -> None:
    probe = server_model(5000.0)
    r = search(probe, 10.0, 1000.0, SLO_5MS, None)
    assert probe.loads == [10.0, 1000.0]
    assert r["max_load"] == 1000.0 and r["hi_passed"] and r["converged"]
    assert r["bracket"] == [1000.0, None]


def test_search_respects_max_probes() -> None:
    probe = server_model(777.0)
    r = search(probe, 1.0, 100000.0, SLO_5MS, None, tolerance=1e-9, max_probes=5)
    assert len(probe.loads) == 5 and len(r["probes"]) == 5
    assert not r["converged"]
    assert r["max_load"] == max(p["load"] for p in r["probes"] if p["ok"])
    assert r["bracket"][0] <= 777.0 < r["bracket"][1]


def test_search_midpoints_geometric_then_arithmetic() -> None:
    probe = server_model(150.0)
    search(probe, 1.0, 10000.0, SLO_5MS, None, max_probes=3)
    assert probe.loads[2] == pytest.approx(100.0)  # sqrt(1 * 10000): the bracket spans 10^4
    probe = server_model(150.0)
    search(probe, 100.0, 300.0, SLO_5MS, None, max_probes=3)
    assert probe.loads[2] == pytest.approx(200.0)  # 3x bracket: arithmetic


def test_search_treats_client_bound_probes_as_a_ceiling_not_a_failure() -> None:
    probe = server_model(1000.0, client_limit=300.0)
    r = search(probe, 10.0, 2000.0, SLO_5MS, None)
    assert r["max_load"] <= 300.0 and r["converged"] and r["inconclusive"] is None
    assert r["client_limit"] is not None and r["client_limit"] > 300.0
    bound = [p for p in r["probes"] if p["load"] > 300.0]
    assert bound and all(not p["ok"] and not p["judged"] and p["violations"][0] == CLIENT_BOUND
                         for p in bound)
    assert len(bound) == 3 * len({p["load"] for p in bound})  # each tried three times
    assert "client-bound" in CLIENT_BOUND
    # a client-bound lo: the search goes down, and never claims more than the client drove
    r = search(server_model(1000.0, client_limit=5.0), 10.0, 2000.0, SLO_5MS, None)
    assert r["lo_failed"] and r["searched_down"] and r["max_load"] <= 5.0
    # nothing below the client's limit met the SLO: inconclusive, not "no load meets it"
    r = search(server_model(0.1, client_limit=5.0), 10.0, 2000.0, SLO_5MS, None, tries=1)
    assert r["max_load"] is None and r["inconclusive"] == (
        "the client could not drive 10 and no lower load probed met the SLO")


def test_a_probe_on_a_shared_core_is_run_again_and_judged_when_the_machine_quietens() -> None:
    busy = {100.0: 2}  # the first two tries at 100 land on a busy core

    def probe(load: float) -> dict:
        shared = busy.get(load, 0) > 0
        busy[load] = busy.get(load, 0) - 1
        return dict(summary(p99=1.0, throughput=load), core_shared=shared,
                    shared_core={"role": "worker0", "core": 1, "others_pct": 80.0})

    r = search(probe, 10.0, 100.0, SLO_5MS, None)
    assert r["max_load"] == 100.0 and r["hi_passed"] and r["inconclusive"] is None
    tries = [p for p in r["probes"] if p["load"] == 100.0]
    assert [p["judged"] for p in tries] == [False, False, True]
    assert tries[0]["violations"][0] == SHARED_CORE and not tries[0]["ok"]
    assert tries[0]["detail"] == "shared core (other processes took 80% of core 1, worker0's)"


def test_a_probe_still_on_a_shared_core_ends_the_search_inconclusive_never_a_capacity() -> None:
    def probe(load: float) -> dict:
        return dict(summary(p99=4.0, throughput=load), core_shared=load > 50,
                    shared_core={"role": "worker0", "core": 1, "others_pct": 95.0})

    r = search(probe, 10.0, 100.0, SLO_5MS, None)
    assert r["max_load"] is None and not r["converged"]
    assert [p["load"] for p in r["probes"]] == [10.0, 100.0, 100.0, 100.0]
    assert r["inconclusive"] == ("the machine was busy: shared core (other processes took 95% "
                                 "of core 1, worker0's) at 100, in 3 tries (p99 4.000 ms "
                                 "there, not judged)")


def test_search_uses_max_errors_and_records_figures() -> None:
    def probe(load: float) -> dict:
        return summary(p99=1.0, throughput=load * 10, timeouts=int(load > 400) * 5)

    r = search(probe, 100.0, 800.0, SLO_5MS, max_errors=0.001, tolerance=0.01)
    assert 400 / 1.01 <= r["max_load"] <= 400
    p = r["probes"][1]
    assert p == {"load": 800.0, "ok": False, "violations": p["violations"], "p99_ms": 1.0,
                 "throughput_msgs_s": 8000.0, "error_rate": 0.005, "judged": True,
                 "why": None, "busy": False, "detail": None}
    assert "max errors" in p["violations"][0]


@pytest.mark.parametrize(("lo", "hi", "kw"), [
    (10.0, 10.0, {}), (20.0, 10.0, {}), (0.0, 10.0, {}), (-1.0, 10.0, {}),
    (1.0, 10.0, {"tolerance": 0.0}), (1.0, 10.0, {"max_probes": 1}),
    (1.2, 1.4, {"integer": True}),
])
def test_search_rejects_bad_arguments(lo: float, hi: float, kw: dict) -> None:
    with pytest.raises(ValueError):
        search(server_model(5.0), lo, hi, SLO_5MS, None, **kw)


# ---------------------------------------------------------------------------- until degraded


def test_next_load() -> None:
    assert next_load(100, "double", 0, 1000) == 200
    assert next_load(600, "double", 0, 1000) is None
    assert next_load(500, "double", 0, 1000) == 1000
    assert next_load(100, "add", 50, 1000) == 150
    assert next_load(980, "add", 50, 1000) is None
    with pytest.raises(ValueError, match="mode"):
        next_load(100, "triple", 0, 1000)
    with pytest.raises(ValueError, match="increment"):
        next_load(100, "add", 0, 1000)
    with pytest.raises(ValueError, match="double"):
        next_load(0, "double", 0, 1000)


# ---------------------------------------------------------------------------- recovery


def spike_series(recover_after: int, spike: tuple[int, int] = (20, 30), length: int = 60,
                 seed: int = 3, blip_at: int | None = None):
    """Per-second series: p99 ~1 ms and ~1000 msgs/s, a spike, then ``recover_after`` s
    of elevated p99 (3 ms) before the baseline returns. ``blip_at``: one healthy second
    inside the elevated stretch."""
    rng = np.random.default_rng(seed)
    secs = list(range(length))
    p99: list[float | None] = list(1.0 + rng.uniform(-0.05, 0.05, length))
    tp = list(1000.0 * (1 + rng.uniform(-0.02, 0.02, length)))
    s0, s1 = spike
    for k in range(s0, s1):
        p99[k], tp[k] = (None if k % 3 == 0 else 40.0), 300.0
    for k in range(s1, min(s1 + recover_after, length)):
        p99[k] = 3.0
    if blip_at is not None:
        p99[blip_at] = 1.0
    return secs, p99, tp


@pytest.mark.parametrize("after", [0, 1, 7, 15])
def test_recovery_time_planted(after: int) -> None:
    secs, p99, tp = spike_series(after)
    r = recovery_time(secs, p99, tp, 20.0, 30.0)
    assert r["recovered"] and abs(r["recovery_s"] - after) < 1.0
    assert r["baseline_p99_ms"] == pytest.approx(1.0, abs=0.05)
    assert r["baseline_throughput"] == pytest.approx(1000.0, rel=0.02)
    assert r["band"] == 0.25


def test_recovery_needs_hold_consecutive_seconds() -> None:
    secs, p99, tp = spike_series(8, blip_at=33)
    assert recovery_time(secs, p99, tp, 20, 30, hold=2)["recovery_s"] == 8.0
    assert recovery_time(secs, p99, tp, 20, 30, hold=1)["recovery_s"] == 3.0


def test_recovery_throughput_must_return_too() -> None:
    secs, p99, tp = spike_series(0)
    for k in range(30, 35):
        tp[k] = 500.0
    assert recovery_time(secs, p99, tp, 20, 30)["recovery_s"] == 5.0


def test_recovery_gap_in_series_breaks_the_run() -> None:
    secs, p99, tp = spike_series(0)
    del secs[31], p99[31], tp[31]  # second 31 missing: 30 and 32 are not consecutive
    assert recovery_time(secs, p99, tp, 20, 30)["recovery_s"] == 2.0


def test_recovery_fractional_spike_end() -> None:
    secs, p99, tp = spike_series(4)
    r = recovery_time(secs, p99, tp, 20.0, 29.5)
    assert r["recovery_s"] == pytest.approx(4.5)


def test_never_recovers() -> None:
    secs, p99, tp = spike_series(100)
    r = recovery_time(secs, p99, tp, 20, 30)
    assert not r["recovered"] and r["recovery_s"] is None and r["note"]


def test_recovery_without_baseline() -> None:
    secs, p99, tp = spike_series(2)
    r = recovery_time(secs, [None] * 20 + p99[20:], tp, 20, 30)
    assert not r["recovered"] and r["baseline_p99_ms"] is None and "baseline" in r["note"]


def test_recovery_rejects_bad_arguments() -> None:
    secs, p99, tp = spike_series(2)
    with pytest.raises(ValueError):
        recovery_time(secs, p99[:-1], tp, 20, 30)
    with pytest.raises(ValueError):
        recovery_time(secs, p99, tp, 30, 20)
    with pytest.raises(ValueError):
        recovery_time(secs, p99, tp, 20, 30, hold=0)


# ---------------------------------------------------------------------------- soak


def soak_series(p99_rise_ms: float, rss_rise_bytes: float, seed: int = 11):
    """One hour: p99 per second (~2 ms, 10% noise, some None) and RSS every 10 s
    (~200 MB, 2 MB noise), each with a planted linear rise over the hour."""
    rng = np.random.default_rng(seed)
    secs = np.arange(3600.0)
    p99: list[float | None] = list(2.0 + p99_rise_ms * secs / 3600
                                   + rng.normal(0, 0.2, secs.size))
    for k in range(0, 3600, 97):
        p99[k] = None
    rss_s = np.arange(0.0, 3600.0, 10.0)
    rss = 200e6 + rss_rise_bytes * rss_s / 3600 + rng.normal(0, 2e6, rss_s.size)
    return list(secs), p99, list(rss_s), list(rss)


@pytest.mark.parametrize(("p99_rise", "rss_rise", "verdict"), [
    (0.0, 0.0, "stable"),
    (1.0, 0.0, "p99 growing"),
    (0.0, 60e6, "memory growing"),
    (1.0, 60e6, "p99 and memory growing"),
])
def test_soak_verdict(p99_rise: float, rss_rise: float, verdict: str) -> None:
    secs, p99, rss_s, rss = soak_series(p99_rise, rss_rise)
    r = soak_verdict(secs, p99, rss_s, rss)
    assert r["verdict"] == verdict
    assert r["p99_growing"] == (p99_rise > 0)
    assert r["memory_growing"] == (rss_rise > 0)
    if p99_rise:
        assert r["p99_trend"]["slope_per_h"] == pytest.approx(p99_rise, rel=0.2)


def test_soak_verdict_sawtooth_memory_is_stable() -> None:
    secs, p99, rss_s, _ = soak_series(0.0, 0.0)
    rss = [200e6 + 20e6 * ((t % 600) / 600) for t in rss_s]  # grows, is freed, grows ...
    assert soak_verdict(secs, p99, rss_s, rss)["verdict"] == "stable"


def test_soak_verdict_without_rss() -> None:
    secs, p99, _, _ = soak_series(1.0, 0.0)
    r = soak_verdict(secs, p99, None, None)
    assert r["memory_trend"] is None and not r["memory_growing"]
    assert r["verdict"] == "p99 growing"


def test_a_worker_waiting_for_its_core_is_a_busy_machine_not_a_client_ceiling() -> None:
    def probe(load: float) -> dict:
        return dict(summary(p99=2.0, throughput=load), client_bound=True, client_wait_pct=43.0,
                    client_bound_rule="run_queue", client_bound_detail="a worker waited for "
                    "its core 43% of the time (>= 10%; it ran 2%): replies sat unread meanwhile")

    r = search(probe, 100.0, 1000.0, SLO_5MS, None)
    assert r["max_load"] is None and r["client_limit"] is None
    assert [p["load"] for p in r["probes"]] == [100.0] * 3  # no halving down to the floor
    assert r["inconclusive"].startswith("the machine was busy: client-bound (a worker waited "
                                        "for its core 43% of the time")
