"""HdrHistogram interval logs (``.hlog``) of a run: one file per step, readable by
HistogramLogProcessor, HistogramLogAnalyzer and the ``hdrhistogram`` package's reader.

harness's histogram is bucket for bucket an HdrHistogram with lowest value 1 ns, highest
2**43 - 1 ns and 2 significant digits (the same 4736 counts), so each interval is encoded
losslessly by copying the counts. Values are in ns; ``Interval_Max`` is in ms (the tools'
default ``outputValueUnitRatio`` of 1e6 reads it so).

What a step's file holds (log format 1.3):

* the header: format version, ``#[StartTime: ...]`` and ``#[BaseTime: ...]`` (the step's
  measure-window start when run.json has it, else the run's start), the column legend;
* untagged intervals: the step's latency, one per second of its measure window when the
  per-second histograms add up to the step's histogram (the last second is as long as the
  window leaves it), else one interval for the whole step; timestamps are seconds from
  BaseTime;
* one whole-step interval per other histogram of the step, tagged (``Tag=service``,
  ``Tag=connect``, ``Tag=fanout``, ``Tag=kind:NAME``); the tools read them with ``-tag``.

Values at or above 2**43 ns (2.4 h) do not fit an HdrHistogram: a comment line counts them.
The ``hdrhistogram`` package encodes each interval; the header and the ``Tag=`` prefix are
written here (its ``output_start_time`` raises, and its writer has no tags). Pure text: no
files, no printing.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from harness.core.histogram import LIMIT, Histogram

LOG_FORMAT_VERSION = "1.3"
MAX_VALUE_UNIT_RATIO = 1e6  # Interval_Max in ms, for values in ns
LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-]")


def hdr_of(h: Histogram) -> Any:
    """``h`` as an ``hdrh.histogram.HdrHistogram`` (1 ns to 2**43 - 1, 2 digits), count
    for count; values in overflow are left out (an HdrHistogram cannot hold them)."""
    from hdrh.histogram import HdrHistogram

    hdr = HdrHistogram(1, LIMIT - 1, 2)
    if hdr.counts_len != len(h.counts):  # the package's layout moved: refuse, never guess
        raise ValueError(f"hdrhistogram has {hdr.counts_len} counts, harness {len(h.counts)}")
    np.ctypeslib.as_array(hdr.counts)[:] = h.counts  # the counts are a ctypes array
    nz = np.flatnonzero(h.counts)
    if len(nz):
        hdr.set_internal_tacking_values(int(nz[0]), int(nz[-1]), int(h.counts[nz].sum()))
    return hdr


def interval_line(h: Histogram, start_s: float, length_s: float, tag: str | None = None
                  ) -> str:
    """One interval line: ``[Tag=T,]start,length,max_ms,HISTF...`` (as Java writes it)."""
    hdr = hdr_of(h)
    head = f"Tag={tag_of(tag)}," if tag else ""
    return (f"{head}{start_s:.3f},{length_s:.3f},"
            f"{hdr.get_max_value() / MAX_VALUE_UNIT_RATIO:.3f},{hdr.encode().decode()}")


def tag_of(name: str) -> str:
    """A tag the tools accept: no comma, space or control character."""
    return _TAG_UNSAFE.sub("_", name) or "_"


def header(start_unix_s: float, comments: list[str]) -> list[str]:
    """The header lines: comments, format version, StartTime, BaseTime, the legend."""
    date = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(start_unix_s))
    return ([f"#[{c}]" for c in comments] +
            [f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
             f"#[StartTime: {start_unix_s:.3f} (seconds since epoch), {date}]",
             f"#[BaseTime: {start_unix_s:.3f} (seconds since epoch)]", LEGEND])


def step_start(doc: dict, step: dict) -> float:
    """The step's measure-window start (Unix s), or the run's start for older run.json."""
    t = step.get("measure_started_unix_s")
    if t is None:
        t = doc.get("environment", {}).get("started_unix_s") or 0.0
    return float(t)


def latency_intervals(step: dict) -> list[tuple[Histogram, float, float]]:
    """(histogram, start s, length s) of the step's latency: per second when the seconds
    add up to the step's histogram, else the whole step in one interval."""
    d = step.get("histograms", {}).get("latency")
    if not d:
        return []
    whole = Histogram.from_dict(d)
    duration = float(step.get("duration_s") or 0.0)
    seconds = [Histogram.from_dict(x) for x in step.get("second_histograms") or []]
    if seconds and np.array_equal(sum(s.counts for s in seconds), whole.counts):
        return [(s, float(k), max(min(1.0, duration - k), 0.0) if duration else 1.0)
                for k, s in enumerate(seconds)]
    return [(whole, 0.0, duration)]


def step_hlog(doc: dict, k: int) -> str:
    """The .hlog text of step ``k`` of a run document (run.json with histograms)."""
    step = doc["steps"][k]
    hists = step.get("histograms", {})
    version = doc.get("environment", {}).get("harness")
    comments = [f"harness{' ' + version if version else ''} step {k}: {step.get('conns')} "
                f"conns, workload {doc.get('workload')}, values in ns"]
    for name, d in hists.items():
        over = int(d.get("overflow", 0))
        if over:
            comments.append(f"harness: {over} {name} values at or above 2^43 ns (2.4 h) are "
                            f"not in the intervals")
    lines = header(step_start(doc, step), comments)
    lines += [interval_line(h, t, n) for h, t, n in latency_intervals(step)]
    duration = float(step.get("duration_s") or 0.0)
    lines += [interval_line(Histogram.from_dict(d), 0.0, duration, name)
              for name, d in hists.items() if name != "latency" and d.get("total")]
    return "\n".join(lines) + "\n"


def hlog_name(k: int) -> str:
    return f"latency-step{k}.hlog"
