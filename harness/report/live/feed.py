"""Each second of a step, merged once across workers and machines, for the live page.

Workers' progress rows (:meth:`harness.worker.recording.Recorder.progress`) carry their last
closed seconds: counts and the second's latency histogram as nonzero buckets. A second is
merged when every worker of the row list has closed it: counts added, bucket counts added,
then percentiles taken once (never averaged). At the step's end the records are rebuilt
from the workers' results, the same values run.json holds, so the page and the report agree.

Records are JSON-able dicts; latencies in ms, CPU in % of one core, times in s of the
step's measure window. :class:`Feed` keeps every event encoded once, whatever the number
of viewers (each viewer reads the shared list).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any

import numpy as np
import orjson

from harness.analysis.bottleneck import CLIENT_BOUND_CPU, CLIENT_BUSY_PCT, RUN_QUEUE_PCT
from harness.analysis.summary import ms
from harness.core.histogram import N_BUCKETS, Histogram, from_counts
from harness.core.units import SEC

QUANTILES = (50.0, 90.0, 99.0, 99.9, 100.0)  # p50 p90 p99 p99.9 max, in that order


def percentiles_ms(h: Histogram) -> list[float | None]:
    """p50, p90, p99, p99.9 and max (ms) of ``h``; all None when it is empty."""
    return [ms(v) for v in h.percentiles(QUANTILES)]


def second_record(step: int, sec: int, counts: Sequence[int], hist: Histogram,
                  cum: Histogram) -> dict:
    """One second: sent, received, errors, its own percentiles and the step's so far."""
    sent, received, errors = (int(c) for c in counts)
    return {"step": step, "s": sec, "sent": sent, "received": received, "errors": errors,
            "n": len(hist), "p": percentiles_ms(hist), "cum": percentiles_ms(cum)}


def step_records(step: int, series: dict, hists: Sequence[Histogram]) -> list[dict]:
    """A finished step's records from its merged per-second series and histograms (what
    run.json holds: ``aggregate.combine_series``)."""
    cum, out = Histogram(), []
    for sec in range(len(series.get("second", ()))):
        h = hists[sec] if sec < len(hists) else Histogram()
        cum.merge(h)
        out.append(second_record(step, sec, [series[k][sec] for k in
                                             ("sent", "received", "errors")], h, cum))
    return out


def live_events(doc: dict, series: Sequence[dict]) -> list[tuple[str, Any]]:
    """The events a live page had at the end of the run, rebuilt from run.json (``doc``,
    with its per-second histograms) and each step's per-second counts (``series[k]``):
    what report.html draws with page.js (CPU, connections and server samples are the live
    page's only)."""
    steps = doc.get("steps", [])
    out: list[tuple[str, Any]] = [("meta", {
        "name": doc.get("config", {}).get("name", ""), "target": doc.get("target", ""),
        "delivery": doc.get("delivery", ""), "workload": doc.get("workload", ""),
        "conns": [s.get("conns") for s in steps]})]
    for k, s in enumerate(steps):
        cols = series[k] if k < len(series) else {}
        ints = {name: [int(v) for v in cols.get(name, ())] for name in
                ("second", "sent", "received", "errors")}
        hists = [Histogram.from_dict(h) for h in s.get("second_histograms", ())]
        step = {key: v for key, v in s.items() if key not in ("histograms",
                                                               "second_histograms")}
        out += [("step_start", {"step": k, "conns": s.get("conns")}),
                ("final", {"step": k, "records": [dict(r, final=True) for r in
                                                  step_records(k, ints, hists)]}),
                ("step", dict(step, step=k))]
    out += [("verdict", {"verdict": doc.get("degradation") or {}, "exit": None,
                         "reason": None}), ("end", {})]
    return out


def page_script() -> str:
    """The page's drawing code (page.js), shipped with the package."""
    return resources.files("harness.report.live").joinpath("page.js").read_text(encoding="utf-8")


def cpu_flags(cpu: float, wait: float) -> list[str]:
    """CLIENT-BOUND: the worker used >= 90% of its core, or ran and waited for it >= 80%
    (bottleneck.client_bound_rule's first two rules); SHARED CORE: it waited for its core,
    taken by other processes, >= 10% of the second (the run-queue rule)."""
    flags = []
    if cpu >= CLIENT_BOUND_CPU or cpu + wait >= CLIENT_BUSY_PCT:
        flags.append("CLIENT-BOUND")
    if wait >= RUN_QUEUE_PCT:
        flags.append("SHARED CORE")
    return flags


class StepMerge:
    """One step's seconds, merged from progress rows as every worker closes them."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.parts: dict[int, dict[int, tuple]] = {}  # second -> worker -> its part
        self.done = 0  # seconds merged so far
        self.cum = Histogram()
        self.last: dict[int, dict] = {}  # worker -> its previous row (CPU deltas)
        self.kinds: dict[str, int] = {}  # errors by kind at the last record
        self.reconnects = 0
        self.live: dict[int, dict] = {}  # second -> the extras its live record had
        self.cpu: dict[str, dict] = {}  # "w<index>" -> its latest CPU figures

    def rows(self, rows: Iterable[dict], server: dict | None = None) -> list[dict]:
        """The seconds that ``rows`` (one per worker, the latest) close, merged."""
        rows = list(rows)
        for r in rows:
            for part in r.get("seconds", ()):
                if part[0] >= self.done:
                    self.parts.setdefault(part[0], {})[r["worker"]] = part
        closed = min((max((p[0] for p in r.get("seconds", ())), default=-1) for r in rows),
                     default=-1)
        out = []
        # changes of totals (errors by kind, reconnects) go to the next second published
        extras = self._extras(rows, server) if self.done <= closed else {}
        while self.done <= closed:
            out.append(self._merge(self.done, self.parts.pop(self.done, {}), extras))
            self.done += 1
        for r in rows:
            if r.get("at", 0) > self.last.get(r["worker"], {}).get("at", -1):
                self.last[r["worker"]] = r
        return out

    def _merge(self, sec: int, parts: dict[int, tuple], extras: dict) -> dict:
        counts = np.zeros(N_BUCKETS, dtype=np.int64)
        totals = [0, 0, 0]
        for part in parts.values():
            for k in range(3):
                totals[k] += int(part[1 + k])
            np.add.at(counts, np.asarray(part[4], dtype=np.int64), part[5])
        h = from_counts(counts)
        self.cum.merge(h)
        rec = second_record(self.step, sec, totals, h, self.cum)
        rec.update(extras)
        self.live[sec] = extras
        return rec

    def _extras(self, rows: list[dict], server: dict | None) -> dict:
        """What the totals alone tell, since the last record: errors by kind and reconnects
        (their change), open connections, CPU per worker with its flags, server samples."""
        kinds: dict[str, int] = {}
        for r in rows:
            for k, n in r.get("kinds", {}).items():
                kinds[k] = kinds.get(k, 0) + n
        delta = {k: n - self.kinds.get(k, 0) for k, n in kinds.items() if n > self.kinds.get(k, 0)}
        self.kinds = kinds
        reconnects = sum(r.get("reconnects", 0) for r in rows)
        out = {"open": sum(r.get("open", 0) for r in rows), "kinds": delta,
               "reconnects": max(reconnects - self.reconnects, 0),
               "cpu": self._cpu(rows)}
        self.reconnects = reconnects
        if server:
            out["server"] = server
        return out

    def _cpu(self, rows: list[dict]) -> dict[str, dict]:
        """Each worker's CPU and run-queue wait (% of its core) between its last two rows
        (a row passed on twice counts once: the figure of its interval is kept)."""
        for r in rows:
            prev = self.last.get(r["worker"])
            if prev is None or r.get("at", 0) <= prev.get("at", 0):
                continue
            wall = (r["at"] - prev["at"]) / SEC
            cpu = 100 * (r["cpu_s"] - prev["cpu_s"]) / wall
            wait = 0.0
            if r.get("wait_ns") is not None and prev.get("wait_ns") is not None:
                wait = 100 * (r["wait_ns"] - prev["wait_ns"]) / SEC / wall
            self.cpu[f"w{r['worker']}"] = {"cpu": round(cpu, 1), "wait": round(wait, 1),
                                           "flags": cpu_flags(cpu, wait)}
        return dict(self.cpu)

    def final(self, series: dict, hists: Sequence[Histogram]) -> list[dict]:
        """The step's records rebuilt from its results, with the live extras kept."""
        out = step_records(self.step, series, hists)
        for rec in out:
            rec.update(self.live.get(rec["s"], {}))
            rec["final"] = True
        return out


def encode(kind: str, data: Any) -> bytes:
    """One Server-Sent Event: ``event: kind`` and its JSON ``data`` line."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Feed:
    """Every event of the run, encoded once, in order; viewers wait on it for more."""

    def __init__(self, server: Callable[[], dict] | None = None) -> None:
        self.events: list[bytes] = []
        self.cond = threading.Condition()
        self.closed = False
        self.steps: dict[int, StepMerge] = {}
        self.server = server  # the watched server processes' latest CPU % and RSS
        self.built = 0  # records built (once each, whatever the number of viewers)

    def publish(self, kind: str, data: Any) -> None:
        event = encode(kind, data)
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def progress(self, step: Any, rows: list[dict]) -> None:
        """The coordinator's progress callback: the seconds these rows close, published."""
        merge = self.steps.get(step.index)
        if merge is None:
            merge = self.steps[step.index] = StepMerge(step.index)
            self.publish("step_start", {"step": step.index, "conns": step.conns})
        for rec in merge.rows(rows, self.server() if self.server else None):
            self.built += 1
            self.publish("second", rec)

    def step_done(self, index: int, summary: dict, series: dict,
                  hists: Sequence[Histogram]) -> None:
        """A finished step: its exact records (as in run.json) and its summary row."""
        merge = self.steps.setdefault(index, StepMerge(index))
        self.publish("final", {"step": index, "records": merge.final(series, hists)})
        self.publish("step", summary)

    def verdict(self, verdict: dict, code: int, reason: str | None) -> None:
        self.publish("verdict", {"verdict": verdict, "exit": code, "reason": reason})

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, have: int, timeout: float) -> tuple[list[bytes], bool]:
        """Events after the first ``have`` (waiting up to ``timeout`` s for one), and
        whether the feed is closed."""
        with self.cond:
            if len(self.events) <= have and not self.closed:
                self.cond.wait(timeout)
            return self.events[have:], self.closed
