"""The charts of the HTML report, each a matplotlib ``Figure`` saved as inline SVG: latency
percentiles and throughput against load, latency and throughput over time, the percentile
spectrum of each step, and client and server CPU and memory over time.

Figures are built without pyplot (no GUI backend, no global figure state). Units: latency
ms, throughput msgs/s, time s since the start of the first measure window (the steps'
measure windows laid end to end), CPU % of one core, memory MB (resident set). Nothing here
recomputes a statistic: figures come from run.json, spectra from its merged histograms.
matplotlib is imported inside the functions that draw, so importing this module is cheap.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.analysis.judge import load_unit
from harness.core.histogram import Histogram

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

Columns = dict[str, list]  # CSV column name -> values (floats, NaN for an empty cell, or str)


# Percentile spectrum: q = 100 * (1 - 10**-x) for x on a "nines" axis (x=2 is p99).
MAX_NINES = 6.0
SPECTRUM_POINTS = 240
NO_SAMPLES = "no resource samples (no monitor-step CSV files in the run folder)"
_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none", "text.parse_math": False, "font.size": 9, "axes.grid": True,
    "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "legend.fontsize": 8, "legend.frameon": False}
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_WIDTH_IN = 11.0


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the page: ``svg`` is inline SVG markup, or None with a ``note``."""

    key: str
    caption: str
    svg: str | None
    note: str = ""


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
    with matplotlib.rc_context(_RC):
        out = [_sweep_chart(doc)]
        if any(s.get("messages") is not None for s in steps):
            out.append(_completion_chart(steps))
        out.append(Chart("time", TIME_CAPTION, None, short) if short else
                   Chart("time", TIME_CAPTION, _svg(time_figure(steps, series, tl), "time")))
        out.append(Chart("spectrum", "Latency percentile spectrum of each step",
                         _svg(spectrum_figure(steps), "spectrum")))
        if short or not any(m for m in monitor):
            out.append(Chart("resources", RESOURCES_CAPTION, None, short or NO_SAMPLES))
        else:
            out.append(Chart("resources", RESOURCES_CAPTION,
                             _svg(resource_figure(steps, monitor, tl), "resources")))
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
                     _svg(completion_figure(steps), "completion"))
    t = _completion_s(steps[0])
    took = "-" if t is None else f"{t:.3f} s"
    return Chart("completion", COMPLETION_CAPTION, None,
                 f"One step ({step_label(steps[0])}): all delivered in {took}. A curve needs "
                 "two message counts or more (e.g. --messages 100,1000).")


def completion_figure(steps: list[dict]) -> Any:
    name, x = load_axis(steps)
    fig, (ax,) = _figure(1, 1, height=3.4)
    broadcast = any("total_s" in s for s in steps)
    ax.plot(x, [_num(_completion_s(s)) for s in steps], "o-", color="C0",
            label="all delivered" if broadcast else "last reply (measure window)")
    if any("send_s" in s for s in steps):
        ax.plot(x, [_num(s.get("send_s")) for s in steps], "s--", color="C1",
                label="sending (first to last send)")
    for xi, s in zip(x, steps, strict=True):
        t = _completion_s(s)
        if t is not None:
            ax.annotate(f"{t:.3g} s", (xi, t), textcoords="offset points", xytext=(4, 6),
                        fontsize=8)
    ax.set(xlabel=name, ylabel="time (s)")
    _maybe_log(ax, "x", x)
    _maybe_log(ax, "y", [_num(_completion_s(s)) for s in steps])
    ax.legend(loc="best")
    return fig


SWEEP_CAPTION = "Latency percentiles and throughput against load"


def _sweep_chart(doc: dict) -> Chart:
    """The charts against load, or a sentence for a one-step run (a single point is no
    curve): its figures are in the step table."""
    steps = doc["steps"]
    if len(steps) > 1:
        return Chart("sweep", SWEEP_CAPTION, _svg(sweep_figure(doc), "sweep"))
    s = steps[0]
    lat = s.get("latency_ms") or {}
    p99 = "-" if lat.get("p99") is None else f"{lat['p99']:.3f} ms"
    return Chart("sweep", SWEEP_CAPTION, None,
                 f"One step ({step_label(s)}): p99 {p99}, {s.get('throughput_msgs_s', 0):,.1f} "
                 "msgs/s. Curves against load need two steps or more (e.g. --conns 10,100).")


def _figure(rows: int, cols: int = 1, height: float = 3.2) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH_IN, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)


def _svg(fig: Any, prefix: str) -> str:
    """``fig`` as SVG markup fit to sit inside HTML: no XML prolog, DOCTYPE or namespace
    URLs, and every id (and reference to it) prefixed so charts cannot collide."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    s = buf.getvalue()
    s = s[s.index("<svg"):]
    s = _STYLE.sub("", _XMLNS.sub("", s, count=2), count=1)
    s = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', s)
    return _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", s)


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def step_label(s: dict) -> str:
    label = f"{s['conns']} conns"
    if s.get("rate"):
        label += f" @{s['rate']:g}/s"
    if s.get("messages") is not None:
        label += f" x{s['messages']}m"
    return label + ("*" if s.get("partial") else "")


def step_labels(steps: list[dict]) -> list[str]:
    """Each step named by what the sweep varies ("1,000 messages", "50/s per conn",
    "10 conns"); a lone step by all it is (:func:`step_label`)."""
    if len(steps) < 2:
        return [step_label(s) for s in steps]
    unit = load_unit(steps)
    out = []
    for s in steps:
        if unit == "messages":
            label = f"{s['messages']:,} messages"
        elif unit == "rate":
            label = f"{s['rate']:g}/s per conn"
        else:
            label = f"{s['conns']} conns"
        out.append(label + ("*" if s.get("partial") else ""))
    return out


def load_axis(steps: list[dict]) -> tuple[str, list[float]]:
    """What the sweep varies (rate, connections or messages) and its value per step."""
    rates = [float(s.get("rate") or 0) for s in steps]
    conns = [float(s["conns"]) for s in steps]
    msgs = [float(s.get("messages") or 0) for s in steps]
    if len(set(rates)) > 1:
        return "rate (msgs/s)", rates
    if len(set(conns)) > 1 or len(set(msgs)) <= 1:
        return "connections", conns
    return "messages per step", msgs


def _maybe_log(ax: Any, axis: str, values: Iterable[float]) -> None:
    """A log scale on ``axis`` when the values span a factor of 8 or more."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size and v.min() > 0 and v.max() / v.min() >= 8:
        _log(ax, axis)


def _log(ax: Any, axis: str) -> None:
    """Log scale with plain tick labels ("0.1", "20"), not mathtext (which is off)."""
    from matplotlib.ticker import FuncFormatter, LogFormatter

    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    a.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def sweep_figure(doc: dict) -> Any:
    steps = doc["steps"]
    name, x = load_axis(steps)
    fig, (lat, thr) = _figure(1, 2, height=3.6)
    for key, label, style in (("p50", "p50", "o-"), ("p99", "p99", "s-"),
                              ("p999", "p99.9", "^-")):
        lat.plot(x, [_num(s["latency_ms"].get(key)) for s in steps], style, label=label)
    lat.set(xlabel=name, ylabel="latency (ms)", title="latency percentiles")
    _maybe_log(lat, "y", [_num(s["latency_ms"].get(k)) for s in steps for k in ("p50", "p999")])
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
        _maybe_log(ax, "x", x)
        if degraded is not None and name == "connections":
            ax.axvline(float(degraded), color="C3", ls="--", lw=1, label="degradation point")
        ax.legend(loc="best")
    return fig


@dataclass(frozen=True, slots=True)
class Timeline:
    """Where each step's measure window sits on the shared time axis (s)."""

    offsets: list[float]
    lengths: list[float]


def timeline(steps: list[dict], series: Sequence[Columns],
             monitor: Sequence[Columns | None]) -> Timeline:
    offsets, lengths, t = [], [], 0.0
    for k, s in enumerate(steps):
        ser = series[k] if k < len(series) else {}
        mon = monitor[k] if k < len(monitor) else None
        n = float(len(ser.get("second", [])))
        m = max((x + 1 for x in (mon or {}).get("second", []) if np.isfinite(x)), default=0.0)
        length = max(n, float(s.get("duration_s") or 0), m) or 1.0
        offsets.append(t)
        lengths.append(length)
        t += length
    return Timeline(offsets, lengths)


def _boundaries(ax: Any, steps: list[dict], tl: Timeline, labels: bool) -> None:
    """Step boundaries (grey, labelled) and stage boundaries (orange, dotted)."""
    tr = ax.get_xaxis_transform()
    end = tl.offsets[-1] + tl.lengths[-1]
    for k, (s, off, name) in enumerate(zip(steps, tl.offsets, step_labels(steps),
                                           strict=True)):
        if off > 0:
            ax.axvline(off, color="0.4", ls="--", lw=0.8)
        if labels:  # a short step's label goes a row up when its neighbour's is low
            up = k % 2 == 1 and tl.lengths[k - 1] < 0.15 * end
            ax.text(off, 1.09 if up else 1.0, " " + name, transform=tr, fontsize=7,
                    va="bottom", ha="left", color="0.3", clip_on=False)
        stages = s.get("stages") or []
        for j, st in enumerate(stages):
            x = off + float(st.get("start_s", 0))
            ax.axvline(x, color="C1", ls=":", lw=1)
            if labels:
                _stage_label(ax, tr, x, str(st.get("label", "")), j)


STAGE_FONT = 9


def _stage_label(ax: Any, tr: Any, x: float, label: str, j: int) -> None:
    """A stage's label, horizontal at its start, on one of two rows (neighbours alternate,
    so short stages do not print over each other), on a white box over the lines."""
    ax.text(x, 0.96 - 0.1 * (j % 2), " " + label, transform=tr, fontsize=STAGE_FONT,
            va="top", ha="left", color="C1", clip_on=True,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})


def _joined(steps: list[dict], tl: Timeline, cols: Sequence[Columns | None], y: str,
            pick: Any = None, full_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One line over all steps (NaN between steps so they are not joined): x at the middle
    of each second, y from column ``y`` of the rows where ``pick(row_index, col)`` (and,
    with ``full_only``, that the measure window covers whole)."""
    xs, ys = [], []
    for k in range(len(steps)):
        c = cols[k] if k < len(cols) else None
        if not c or y not in c or "second" not in c:
            continue
        rows = [i for i in range(len(c["second"])) if (pick is None or pick(i, c)) and
                (not full_only or _covered(steps[k], c["second"][i]) >= FULL_SECOND)]
        xs.extend([tl.offsets[k] + c["second"][i] + 0.5 for i in rows] + [math.nan])
        ys.extend([c[y][i] for i in rows] + [math.nan])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


FULL_SECOND = 0.999  # a series row covering less of its second than this is partial


def _covered(step: dict, second: float) -> float:
    """How much of series row ``second`` (0-based) the step's measure window covers, 0-1."""
    d = step.get("duration_s")
    return 1.0 if not d else float(min(max(float(d) - second, 0.0), 1.0))


def _partial_seconds(steps: list[dict], tl: Timeline, series: Sequence[Columns]
                     ) -> tuple[list[float], list[float]]:
    """(x, received per second) of the partial seconds that end steps, each count divided
    by the part of its second the window covered (so it is not drawn as a collapse)."""
    xs, ys = [], []
    for k, s in enumerate(steps):
        c = series[k] if k < len(series) else {}
        for i, sec in enumerate(c.get("second", [])):
            part = _covered(s, sec)
            if 0 < part < FULL_SECOND and "received" in c:
                xs.append(tl.offsets[k] + sec + part / 2)
                ys.append(c["received"][i] / part)
    return xs, ys


def time_figure(steps: list[dict], series: Sequence[Columns], tl: Timeline) -> Any:
    fig, (lat, thr) = _figure(2, 1, height=2.6)
    lat.plot(*_joined(steps, tl, series, "p99_ms"), ".-", color="C1", label="p99 per second")
    lat.set(ylabel="latency (ms)")
    _maybe_log(lat, "y", _joined(steps, tl, series, "p99_ms")[1])
    thr.plot(*_joined(steps, tl, series, "received", full_only=True), ".-", color="C2", lw=2,
             label="received/s")
    thr.plot(*_joined(steps, tl, series, "sent", full_only=True), "--", color="C0", lw=1.2,
             zorder=3, label="sent/s")  # on top: in closed loop it equals received/s
    px, py = _partial_seconds(steps, tl, series)
    if len(px):
        thr.plot(px, py, "o", mfc="none", color="C2", markersize=6,
                 label="partial last second (scaled to /s)")
    thr.set(ylabel="msgs/s", xlabel="time (s, measure windows end to end)")
    thr.set_ylim(bottom=0)
    ex, ey = _joined(steps, tl, series, "errors")
    if np.nansum(ey) > 0:
        err = thr.twinx()
        err.plot(ex, ey, "-", color="C3", lw=1, label="errors/s")
        err.set_ylabel("errors/s", color="C3")
        err.grid(False)
    end = tl.offsets[-1] + tl.lengths[-1]
    for ax, labels in ((lat, True), (thr, False)):
        ax.set_xlim(0, end)
        _boundaries(ax, steps, tl, labels)
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
    fig, (ax,) = _figure(1, 1, height=4.2)
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
    ax.set_xticks(ticks, [_nines_label(t) for t in ticks.tolist()])
    ax.set_xlim(0, math.ceil(top))
    _log(ax, "y")
    ax.set(xlabel="percentile", ylabel="latency (ms)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", ncol=2)
    return fig


def _nines_label(n: float) -> str:
    if n == 0:
        return "0%"
    return f"{100 - 10.0 ** (2 - n):.{max(int(n) - 2, 0)}f}%"


def _roles(monitor: Sequence[Columns | None]) -> list[str]:
    seen: dict[str, None] = {}
    for m in monitor:
        for r in (m or {}).get("role", []):
            seen[str(r)] = None
    return sorted(seen, key=lambda r: (r == "server", r))


def resource_figure(steps: list[dict], monitor: Sequence[Columns | None], tl: Timeline) -> Any:
    fig, (cpu, mem) = _figure(2, 1, height=2.6)
    for i, role in enumerate(_roles(monitor)):
        color = "black" if role == "server" else f"C{i % 10}"
        def pick(j: int, c: Columns, role: str = role) -> bool:
            return str(c["role"][j]) == role
        for ax, col in ((cpu, "cpu_pct"), (mem, "rss_mb")):
            ax.plot(*_joined(steps, tl, monitor, col, pick), ".-", color=color, lw=1,
                    markersize=3, label=role)
    cpu.set(ylabel="CPU (% of one core)")
    mem.set(ylabel="memory RSS (MB)", xlabel="time (s, measure windows end to end)")
    end = tl.offsets[-1] + tl.lengths[-1]
    for ax, labels in ((cpu, True), (mem, False)):
        ax.set_xlim(0, end)
        ax.set_ylim(bottom=0)
        _boundaries(ax, steps, tl, labels)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", ncol=4)
    return fig


def history_charts(groups: dict[str, list[Any]]) -> list[Chart]:
    """One chart per plan of ``harness history``: p99 and throughput of each run's key
    step (rows with ``started_unix_s``, ``date``, ``p99_ms``, ``throughput_msgs_s``) over
    time; a plan run once gets a sentence (one point is no trend)."""
    import matplotlib

    out = []
    with matplotlib.rc_context(_RC):
        for k, (name, rows) in enumerate(groups.items()):
            caption = f"{name}: p99 and throughput of the key step (knee, else top step)"
            if len(rows) < 2:
                r = rows[0]
                p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.3f} ms"
                tput = "-" if r.throughput_msgs_s is None else f"{r.throughput_msgs_s:,.1f}"
                out.append(Chart(f"history-{k}", caption, None,
                                 f"One run ({r.date}): p99 {p99}, {tput} msgs/s. A trend needs "
                                 "two runs of this plan or more."))
                continue
            out.append(Chart(f"history-{k}", caption + " over time",
                             _svg(history_figure(rows), f"history{k}")))
    return out


HISTORY_PAD_S = 60.0  # at least this much room (s) each side of the runs on the time axis


def history_figure(rows: list[Any]) -> Any:
    """p99 and throughput against run start (UTC); the axis spans the runs, plus 5% (at
    least a minute) each side, with dates as short as their spread allows."""
    import datetime as dt

    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    fig, (lat, thr) = _figure(1, 2, height=3.0)
    when = [dt.datetime.fromtimestamp(r.started_unix_s, dt.UTC) for r in rows]
    lat.plot(when, [_num(r.p99_ms) for r in rows], "s-", color="C1", label="p99")
    lat.set(ylabel="p99 latency (ms)", title="p99")
    thr.plot(when, [_num(r.throughput_msgs_s) for r in rows], "o-", color="C2",
             label="msgs/s")
    thr.set(ylabel="throughput (msgs/s)", title="throughput")
    t = [r.started_unix_s for r in rows]
    pad = max(0.05 * (max(t) - min(t)), HISTORY_PAD_S)
    lo = dt.datetime.fromtimestamp(min(t) - pad, dt.UTC)
    hi = dt.datetime.fromtimestamp(max(t) + pad, dt.UTC)
    for ax in (lat, thr):
        ax.set_ylim(bottom=0)
        ax.set_xlim(lo, hi)
        locator = AutoDateLocator(tz=dt.UTC)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=dt.UTC))
        ax.set_xlabel("run start (UTC)")
    return fig
