"""The charts of the HTML report, each a matplotlib ``Figure`` saved as inline SVG: latency
percentiles and throughput against load, latency and throughput over time, the percentile
spectrum of each step, and client and server CPU and memory over time. Here: the page's
charts in order, and those against load and the spectra; the charts over time are
harness.report.timecharts', the shared drawing kit harness.report.figures'.

Figures are built without pyplot (no GUI backend, no global figure state). Units: latency
ms, throughput msgs/s, time s since the start of the first measure window (the steps'
measure windows laid end to end), CPU % of one core, memory MB (resident set). Nothing here
recomputes a statistic: figures come from run.json, spectra from its merged histograms.
matplotlib is imported inside the functions that draw, so importing this module is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.core.histogram import Histogram
from harness.report.figures import (
    RC,
    Chart,
    Columns,
    load_axis,
    log_axis,
    maybe_log,
    new_figure,
    num,
    step_label,
    step_labels,
    to_svg,
)
from harness.report.timecharts import resource_figure, time_figure, timeline

if TYPE_CHECKING:
    pass


# Percentile spectrum: q = 100 * (1 - 10**-x) for x on a "nines" axis (x=2 is p99).
MAX_NINES = 6.0
SPECTRUM_POINTS = 240
NO_SAMPLES = "no resource samples (no monitor-step CSV files in the run folder)"


def render_charts(doc: dict, series: Sequence[Columns],
                  monitor: Sequence[Columns | None]) -> list[Chart]:
    """Every chart of the page, in page order (sweep, over time, spectrum, resources)."""
    import matplotlib

    steps = doc.get("steps", [])
    if not steps:
        return [Chart("none", "Charts", None, "no step was measured")]
    monitor = list(monitor) + [None] * (len(steps) - len(monitor))
    tl = timeline(steps, series, monitor)
    short = short_steps(steps)
    with matplotlib.rc_context(RC):
        out = [_sweep_chart(doc)]
        if any(s.get("messages") is not None for s in steps):
            out.append(_completion_chart(steps))
        out.append(Chart("time", TIME_CAPTION, None, short) if short else
                   Chart("time", TIME_CAPTION, to_svg(time_figure(steps, series, tl), "time")))
        out.append(Chart("spectrum", "Latency percentile spectrum of each step",
                         to_svg(spectrum_figure(steps), "spectrum")))
        if short or not any(m for m in monitor):
            out.append(Chart("resources", RESOURCES_CAPTION, None, short or NO_SAMPLES))
        else:
            out.append(Chart("resources", RESOURCES_CAPTION,
                             to_svg(resource_figure(steps, monitor, tl), "resources")))
    return out


TIME_CAPTION = "Latency and throughput over time (steps end to end)"
RESOURCES_CAPTION = "Client and server CPU and memory over time"
MIN_TIMED_S = 5.0  # a message-count sweep whose steps are all shorter gets no time charts


def short_steps(steps: list[dict]) -> str | None:
    """Why the charts over time are left out, or None: every step is a message count done
    in under MIN_TIMED_S, so the per-second series would be a point or two per step (its
    figures are in the table, its time to complete in the chart against messages)."""
    if not all(s.get("messages") is not None for s in steps):
        return None
    longest = max(_completion_s(s) or 0.0 for s in steps)
    if longest >= MIN_TIMED_S:
        return None
    return (f"Not charted: every step is a message count done in under {MIN_TIMED_S:g} s "
            f"(the longest took {longest:.3f} s), a point or two per step at one point per "
            "second. The step table has their figures; the chart above, the time each "
            "took.")


def _completion_s(s: dict) -> float | None:
    """The time a message-count step took: until every receiver had every message
    (broadcast), else the measure window (until the last reply)."""
    v = s.get("total_s", s.get("duration_s"))
    return None if v is None else float(v)


COMPLETION_CAPTION = "Time to all delivered against messages per step"


def _completion_chart(steps: list[dict]) -> Chart:
    """What a fan-out plan asks: how long each message count took to reach every
    receiver, with the time spent sending; a sentence for a single step."""
    if len(steps) > 1:
        return Chart("completion", COMPLETION_CAPTION,
                     to_svg(completion_figure(steps), "completion"))
    t = _completion_s(steps[0])
    took = "-" if t is None else f"{t:.3f} s"
    return Chart("completion", COMPLETION_CAPTION, None,
                 f"One step ({step_label(steps[0])}): all delivered in {took}. A curve needs "
                 "two message counts or more (e.g. --messages 100,1000).")


def completion_figure(steps: list[dict]) -> Any:
    name, x = load_axis(steps)
    fig, (ax,) = new_figure(1, 1, height=3.4)
    broadcast = any("total_s" in s for s in steps)
    ax.plot(x, [num(_completion_s(s)) for s in steps], "o-", color="C0",
            label="all delivered" if broadcast else "last reply (measure window)")
    if any("send_s" in s for s in steps):
        ax.plot(x, [num(s.get("send_s")) for s in steps], "s--", color="C1",
                label="sending (first to last send)")
    for xi, s in zip(x, steps, strict=True):
        t = _completion_s(s)
        if t is not None:
            ax.annotate(f"{t:.3g} s", (xi, t), textcoords="offset points", xytext=(4, 6),
                        fontsize=8)
    ax.set(xlabel=name, ylabel="time (s)")
    maybe_log(ax, "x", x)
    maybe_log(ax, "y", [num(_completion_s(s)) for s in steps])
    ax.legend(loc="best")
    return fig


SWEEP_CAPTION = "Latency percentiles and throughput against load"


def _sweep_chart(doc: dict) -> Chart:
    """The charts against load, or a sentence for a one-step run (a single point is no
    curve): its figures are in the step table."""
    steps = doc["steps"]
    if len(steps) > 1:
        return Chart("sweep", SWEEP_CAPTION, to_svg(sweep_figure(doc), "sweep"))
    s = steps[0]
    lat = s.get("latency_ms") or {}
    p99 = "-" if lat.get("p99") is None else f"{lat['p99']:.3f} ms"
    return Chart("sweep", SWEEP_CAPTION, None,
                 f"One step ({step_label(s)}): p99 {p99}, {s.get('throughput_msgs_s', 0):,.1f} "
                 "msgs/s. Curves against load need two steps or more (e.g. --conns 10,100).")


def sweep_figure(doc: dict) -> Any:
    steps = doc["steps"]
    name, x = load_axis(steps)
    fig, (lat, thr) = new_figure(1, 2, height=3.6)
    for key, label, style in (("p50", "p50", "o-"), ("p99", "p99", "s-"),
                              ("p999", "p99.9", "^-")):
        lat.plot(x, [num(s["latency_ms"].get(key)) for s in steps], style, label=label)
    lat.set(xlabel=name, ylabel="latency (ms)", title="latency percentiles")
    maybe_log(lat, "y", [num(s["latency_ms"].get(k)) for s in steps for k in ("p50", "p999")])
    rate = "deliveries/s" if doc.get("delivery") == "broadcast" else "msgs/s"
    thr.plot(x, [s["throughput_msgs_s"] for s in steps], "o-", color="C2", label=rate)
    thr.set(xlabel=name, ylabel=f"throughput ({rate})", title="throughput")
    thr.set_ylim(bottom=0)
    bound = [(xi, s["throughput_msgs_s"]) for xi, s in zip(x, steps, strict=True)
             if s.get("client_bound")]
    if bound:
        thr.plot(*zip(*bound, strict=True), "x", color="C3", markersize=10,
                 label="client-bound step")
    degraded = doc.get("degradation", {}).get("degraded_at")
    for ax in (lat, thr):
        maybe_log(ax, "x", x)
        if degraded is not None and name == "connections":
            ax.axvline(float(degraded), color="C3", ls="--", lw=1, label="degradation point")
        ax.legend(loc="best")
    return fig


def spectrum(hist: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """(nines, latency ms) of ``hist``: q = 100 * (1 - 10**-nines), up to the last
    percentile the count resolves (log10 of the total, at most MAX_NINES), then the max."""
    top = min(math.log10(hist.total), MAX_NINES) if hist.total > 1 else 0.0
    nines = np.linspace(0.0, top, SPECTRUM_POINTS)
    q = np.clip(100.0 * (1.0 - 10.0 ** -nines), 0.0, 100.0)
    ms = np.asarray(hist.percentiles(q.tolist()), dtype=float) / 1e6
    return np.append(nines, top), np.append(ms, (hist.max or 0) / 1e6)


def spectrum_figure(steps: list[dict]) -> Any:
    fig, (ax,) = new_figure(1, 1, height=4.2)
    top = 1.0
    for k, (s, name) in enumerate(zip(steps, step_labels(steps), strict=True)):
        color = f"C{k % 10}"
        for key, ls, suffix in (("latency", "-", ""), ("service", "--", " service")):
            d = s.get("histograms", {}).get(key)
            h = Histogram.from_dict(d) if d else None
            if h is None or h.total == 0:
                continue
            x, y = spectrum(h)
            ax.plot(x, y, ls, color=color, label=name + suffix)
            top = max(top, x[-1])
    ticks = np.arange(0, math.ceil(top) + 1)
    ax.set_xticks(ticks, [nines_label(t) for t in ticks.tolist()])
    ax.set_xlim(0, math.ceil(top))
    log_axis(ax, "y")
    ax.set(xlabel="percentile", ylabel="latency (ms)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", ncol=2)
    return fig


def nines_label(n: float) -> str:
    if n == 0:
        return "0%"
    return f"{100 - 10.0 ** (2 - n):.{max(int(n) - 2, 0)}f}%"
