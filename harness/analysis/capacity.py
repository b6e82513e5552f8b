"""Capacity questions answered from step summaries: the search by bisection for the highest
load that meets an SLO (the SLOs themselves are harness.analysis.slo's), the next sweep load.

Pure functions over plain values. Running a step is the caller's business: the search and
``harness.run.sweep`` take a callable that runs one real step and returns its summary dict (the
documented keys of ``aggregate.step_figures``). Trend, recovery and soak verdicts are in
``harness.analysis.trends``. Nothing here opens a socket, starts a
process, prints or exits.

Units: latency in ms (an SLO may be written in us, ms or s; it is held in ms), throughput
in msgs/s, error rates as fractions (0.001 is 0.1%), time series in seconds (the value at
second k covers [k, k+1)), memory in bytes. A "load" is whatever the caller's probe
varies (connections, or messages/s for open loop); the search only compares and halves it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from harness.analysis.slo import Slo, num, slo_check

CLIENT_BOUND = "client-bound: the client, not the server, limited this probe"
SHARED_CORE = "shared core: other processes took a material share of a client or server core"


# ---------------------------------------------------------------------------- bisection search

PROBE_TRIES = 3  # a probe that could not be judged is run this many times at most


def search(probe: Callable[[float], dict], lo: float, hi: float, slo: Slo,
           max_errors: float | None, tolerance: float = 0.05, max_probes: int = 12,
           integer: bool = False, tries: int = PROBE_TRIES) -> dict[str, Any]:
    """Find the highest load that meets ``slo`` by bisection over ``probe(load)`` runs.

    ``probe`` runs one real step at ``load`` (connections, or msgs/s) and returns its
    summary. Order: ``lo`` first; if it fails (``lo_failed`` True) the search goes *down*,
    halving the load, until a probe passes (``searched_down`` True; the bisection then
    goes on between it and the last failing load) or the next load would be below the
    floor, ``lo / DOWN_FLOOR`` (1 with ``integer``): then ``max_load`` is None and
    ``floor`` says how low it went. Otherwise ``hi`` (if it passes, ``max_load`` is ``hi``,
    ``hi_passed`` and ``converged`` True: the capacity is at least ``hi``, raise it to learn
    more); then the midpoint of the bracket [highest passing, lowest failing] - geometric when
    hi/lo > 4, arithmetic otherwise - until ``hi_bad - lo_ok <= tolerance * lo_ok``
    (``converged``) or ``max_probes`` probes in all (``converged`` False). With
    ``integer`` loads are rounded to ints and the search also stops, converged, when the
    bracket holds no integer left to try.

    A probe flagged ``client_bound`` or ``core_shared`` is not judged: it is run again, up to
    ``tries`` times in all (those reruns do not count against ``max_probes``). A load still
    on a busy machine (a shared core, or a worker that waited for its core at least
    ``bottleneck.RUN_QUEUE_PCT`` of the time) ends the search: ``inconclusive`` says why (the
    machine was busy, with the figures) and ``max_load`` is None. A load still client-bound
    otherwise is a ceiling the client could not drive (``client_limit``), never a failure of
    the server: the bisection goes on below it, and the search is inconclusive when no probe
    below it met the SLO. The result
    ``max_load`` is the highest load *observed* (and judged) to meet the SLO, within the
    tolerance of the lowest load observed to break it (or the client limit); a noisy server
    can of course pass once where it would fail another time.
    """
    lo, hi = _check_search_args(lo, hi, tolerance, max_probes, integer)
    result: dict[str, Any] = {"max_load": None, "probes": [], "bracket": [None, lo],
                              "converged": False, "hi_passed": False, "lo_failed": False,
                              "searched_down": False, "floor": None, "client_limit": None,
                              "inconclusive": None}
    run = _Prober(probe, slo, max_errors, tries, result)
    try:
        _bracket(run, result, lo, hi, tolerance, integer, lambda: run.count < max_probes,
                 max_probes)
    except _Busy as busy:
        result.update(max_load=None, converged=False, inconclusive=_busy_text(busy.record,
                                                                               tries))
    if result["max_load"] is None and result["client_limit"] is not None and \
            not result["inconclusive"]:
        result["inconclusive"] = (f"the client could not drive {num(result['client_limit'])}"
                                  " and no lower load probed met the SLO")
    return result


class _Prober:
    """``run(load)`` of a search: probe ``load`` until judged (see :func:`_judged_probe`),
    True when it met the SLO; a load the client could not drive lowers ``client_limit``
    and fails; a load on a busy machine raises _Busy. ``count``: the loads probed."""

    def __init__(self, probe: Callable[[float], dict], slo: Slo, max_errors: float | None,
                 tries: int, result: dict[str, Any]) -> None:
        self.probe, self.slo, self.max_errors, self.tries = probe, slo, max_errors, tries
        self.result = result
        self.count = 0

    def __call__(self, load: float) -> bool:
        self.count += 1
        record = _judged_probe(self.probe, load, self.slo, self.max_errors, self.tries,
                               self.result["probes"])
        if record["judged"]:
            return bool(record["ok"])
        if record["busy"]:
            raise _Busy(record)
        limit = self.result["client_limit"]
        self.result["client_limit"] = load if limit is None else min(limit, load)
        return False


class _Busy(Exception):
    """A probe still on a shared core after its tries: the search cannot go on."""

    def __init__(self, record: dict) -> None:
        super().__init__(record["detail"])
        self.record = record


def _judged_probe(probe: Callable[[float], dict], load: float, slo: Slo,
                  max_errors: float | None, tries: int, probes: list[dict]) -> dict:
    """Probe ``load`` until it can be judged, ``tries`` times at most; each try recorded."""
    for _ in range(max(tries, 1)):
        probes.append(_probe_record(load, probe(load), slo, max_errors))
        if probes[-1]["judged"]:
            break
    return probes[-1]


def _busy_text(record: dict, tries: int) -> str:
    p99 = record["p99_ms"]
    return (f"the machine was busy: {record['detail']} at {num(record['load'])}, in "
            f"{tries} tries" + (f" (p99 {p99:.3f} ms there, not judged)" if p99 is not None
                               else ""))


def _bracket(run: Callable[[float], bool], result: dict, lo: float, hi: float,
             tolerance: float, integer: bool, more: Callable[[], bool],
             max_probes: int) -> None:
    """lo, then hi or the search down, then the bisection; fills ``result``."""
    if not run(lo):
        result["lo_failed"] = True
        found = _search_down(run, lo, integer, max_probes - 1)
        result.update(searched_down=True, floor=found[2])
        if found[0] is None:
            result["bracket"] = [None, found[1]]
            return
        lo_ok, hi_bad = found[0], found[1]
    elif run(hi):
        result.update(max_load=hi, bracket=[hi, None], converged=True, hi_passed=True)
        return
    else:
        lo_ok, hi_bad = lo, hi
    lo_ok, hi_bad, converged = _bisect(run, lo_ok, hi_bad, tolerance, integer, more)
    result.update(max_load=lo_ok, bracket=[lo_ok, hi_bad], converged=converged)


def _bisect(run: Callable[[float], bool], lo_ok: float, hi_bad: float, tolerance: float,
            integer: bool, more: Callable[[], bool]) -> tuple[float, float, bool]:
    """Probe the midpoint of [lo_ok, hi_bad] while the bracket is too wide and ``more()``
    probes are allowed: (highest passing, lowest failing, converged)."""
    converged = _narrow_enough(lo_ok, hi_bad, tolerance, integer)
    while not converged and more():
        mid = _midpoint(lo_ok, hi_bad, integer)
        if run(mid):
            lo_ok = mid
        else:
            hi_bad = mid
        converged = _narrow_enough(lo_ok, hi_bad, tolerance, integer)
    return lo_ok, hi_bad, converged


DOWN_FLOOR = 64  # below lo, the search goes down to lo / 64 (six halvings) at most


def _search_down(run: Callable[[float], bool], lo: float, integer: bool,
                 budget: int) -> tuple[float | None, float, float]:
    """Halve the load from ``lo`` until a probe passes: (passing load or None, the lowest
    failing load, the floor)."""
    floor = 1 if integer else lo / DOWN_FLOOR
    bad = lo
    while budget > 0:
        load = bad // 2 if integer else bad / 2
        if load < floor or load >= bad:
            break
        budget -= 1
        if run(load):
            return load, bad, floor
        bad = load
    return None, bad, floor


def _check_search_args(lo: float, hi: float, tolerance: float, max_probes: int,
                       integer: bool) -> tuple[float, float]:
    if integer:
        lo, hi = round(lo), round(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"search needs 0 < lo < hi, got lo={lo}, hi={hi}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0 (a fraction of the load), got {tolerance}")
    if max_probes < 2:
        raise ValueError(f"max_probes must be at least 2 (lo and hi), got {max_probes}")
    return lo, hi


def _probe_record(load: float, summary: dict, slo: Slo, max_errors: float | None) -> dict:
    from harness.analysis.bottleneck import RUN_QUEUE_PCT, skip_detail, step_skipped
    from harness.analysis.judge import error_rate
    ok, violations = slo_check(summary, slo, max_errors)
    if summary.get("client_bound"):
        ok, violations = False, [CLIENT_BOUND, *violations]
    if summary.get("core_shared"):
        ok, violations = False, [SHARED_CORE, *violations]
    why = step_skipped(summary)
    waited = (summary.get("client_wait_pct") or 0.0) >= RUN_QUEUE_PCT
    busy = bool(why) and (bool(summary.get("core_shared")) or waited)
    detail = skip_detail(summary) if why else None
    return {"load": load, "ok": ok, "violations": violations, "judged": why is None,
            "why": why, "busy": busy, "detail": detail,
            "p99_ms": (summary.get("latency_ms") or {}).get("p99"),
            "throughput_msgs_s": summary.get("throughput_msgs_s"),
            "error_rate": error_rate(summary)}


def _narrow_enough(lo_ok: float, hi_bad: float, tolerance: float, integer: bool) -> bool:
    return hi_bad - lo_ok <= tolerance * lo_ok or (integer and hi_bad - lo_ok <= 1)


def _midpoint(lo_ok: float, hi_bad: float, integer: bool) -> float:
    """Geometric mean when the bracket spans more than 4x, else the arithmetic mean.
    With ``integer``, an int strictly inside the bracket (the caller stops before the
    bracket is down to two adjacent ints, so there is one)."""
    mid = math.sqrt(lo_ok * hi_bad) if hi_bad / lo_ok > 4 else (lo_ok + hi_bad) / 2
    if not integer:
        short = float(f"{mid:.3g}")  # a load a person can read back (3 significant digits)
        return short if lo_ok < short < hi_bad else mid
    return min(max(round(mid), lo_ok + 1), hi_bad - 1)


# ---------------------------------------------------------------------------- until degraded


def next_load(current: float, mode: str, increment: float, bound: float) -> float | None:
    """The next sweep load: ``current * 2`` ("double") or ``current + increment`` ("add");
    None when that would pass ``bound``. Always strictly above ``current``."""
    if mode == "double":
        if current <= 0:
            raise ValueError(f"cannot double a load of {current}")
        nxt = current * 2
    elif mode == "add":
        if increment <= 0:
            raise ValueError(f"increment must be > 0, got {increment}")
        nxt = current + increment
    else:
        raise ValueError(f"mode must be 'double' or 'add', not {mode!r}")
    return None if nxt > bound else nxt
