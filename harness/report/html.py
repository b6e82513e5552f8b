"""The HTML report: one self-contained ``report.html`` in the run folder, readable offline.

Library: matplotlib, each chart rendered to SVG and inlined in the page, because it needs
no JavaScript and no network and keeps the page small (about 120 kB for a 5-step run,
where plotly would inline a script of several MB), and it is the long-maintained standard
companion of numpy. Figures are built as ``matplotlib.figure.Figure`` objects (no pyplot,
no GUI backend, no global figure state) and saved through the SVG backend.

Pure rendering: :func:`render_html` takes the run document (``run.json``), the per-step
series and the optional per-step monitor samples, and returns the page; :func:`write_html`
reads a run folder and writes the page atomically. Nothing here recomputes a statistic:
figures come from run.json, percentile spectra from its merged histograms.

Units on the page: latency ms, throughput msgs/s, time s since the start of the first
measure window (the steps' measure windows laid end to end), CPU % of one core, memory MB
(resident set). Every string from run.json or a CSV is escaped with :func:`html.escape`
(in SVG text matplotlib escapes it, and mathtext is off so ``$`` is plain text).
matplotlib is imported inside the functions that draw, so importing this module is cheap.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.histogram import Histogram
from harness.report import results, table
from harness.report.safe import printable, printable_doc

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

REPORT_NAME = "report.html"
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


# ---------------------------------------------------------------------------- files


def write_html(folder: str | Path) -> Path:
    """Render ``<folder>/report.html`` from the run folder's files; return its path."""
    folder = Path(folder)
    if folder.is_file():  # run.json given
        folder = folder.parent
    doc = results.read_run(folder)
    n = len(doc.get("steps", []))
    series = [read_columns(folder / f"series-step{k}.csv") or {} for k in range(n)]
    monitor = [read_columns(folder / f"monitor-step{k}.csv") for k in range(n)]
    path = folder / REPORT_NAME
    results.write_atomic(path, render_html(doc, series, monitor, run_name=folder.name).encode())
    return path


def read_columns(path: Path) -> Columns | None:
    """A CSV as columns; a column whose non-empty cells are all numbers becomes floats
    (NaN where empty), any other stays str. None if the file does not exist."""
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    head, body = rows[0], rows[1:]
    return {name: _typed([r[i] if i < len(r) else "" for r in body])
            for i, name in enumerate(head)}


def _typed(cells: list[str]) -> list:
    try:
        return [float(c) if c.strip() else math.nan for c in cells]
    except ValueError:
        return cells


# ---------------------------------------------------------------------------- page


def render_html(doc: dict, series: Sequence[Columns], monitor: Sequence[Columns | None],
                run_name: str = "") -> str:
    """The whole page as a string: header, verdict, step table, charts, config.

    ``series[k]`` and ``monitor[k]`` belong to ``doc["steps"][k]`` (``monitor[k]`` None or
    missing when step k has no resource samples). Control characters in any string (a kind
    name, a stage label) are shown escaped, in the text and in the charts, and the page is
    checked once more at the end: no raw ESC or BEL reaches the file.
    """
    doc = printable_doc(doc)
    run_name = printable(run_name)
    title = f"harness report: {run_name}" if run_name else "harness report"
    parts = [_PAGE_HEAD.format(title=escape(title), css=_CSS), f"<h1>{escape(title)}</h1>",
             _header(doc, run_name), _verdict(doc), _step_table(doc)]
    parts.append('<h2>Charts</h2>')
    parts.extend(_chart_html(c) for c in render_charts(doc, series, monitor))
    parts.append("<h2>Environment</h2>" + _kv_table(_flatten(doc.get("environment", {}))))
    parts.append("<h2>Configuration</h2>" + _kv_table(_flatten(doc.get("config", {}))))
    parts.append("</body>\n</html>\n")
    return printable("\n".join(parts), keep="\t\n\r")


_PAGE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>"""

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.3em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; margin-top: 1.6em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f4f4f4; }
table.kv td, table.kv th { text-align: left; }
.banner { padding: 0.5em 0.8em; border-radius: 4px; margin: 0.5em 0; }
.ok { background: #e8f5e9; } .bad { background: #ffebee; } .warn { background: #fff8e1; }
figure.chart { margin: 1em 0; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
figure.chart svg * { stroke-linejoin: round; stroke-linecap: butt; }
figcaption { font-weight: 600; margin-bottom: 0.3em; }
p.note { color: #666; font-style: italic; }
ul.notes { margin: 0.4em 0; }
"""


def _header(doc: dict, run_name: str) -> str:
    cfg = doc.get("config", {})
    pacing = cfg.get("pacing", {})
    framing = f"{cfg['framing']} / {cfg.get('size')} B" if cfg.get("framing") else None
    rows = [("target", doc.get("target")), ("workload", doc.get("workload")),
            ("delivery", doc.get("delivery")), ("date (UTC)", run_date(run_name)),
            ("pacing", _pacing_text(pacing) if pacing else None), ("framing / size", framing),
            ("host", doc.get("environment", {}).get("host")),
            ("command", table.command_line(doc)),
            ("schema version", doc.get("schema_version"))]
    out = _kv_table([(k, v) for k, v in rows if v is not None])
    if doc.get("partial"):
        out += ('<p class="banner warn"><strong>PARTIAL:</strong> the run was cut short; the '
                'steps below are what was measured (* = step cut short).</p>')
    return out


def run_date(run_name: str) -> str | None:
    """'2026-11-21 10:28:13' from a results folder name '20261121T102813Z-<name>'."""
    try:
        t = time.strptime(run_name[:16], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", t)


def _pacing_text(p: dict) -> str:
    if p.get("mode") == "open":
        return f"open loop, {p.get('rate')} msgs/s per step (latency from intended send)"
    think = f", think {p.get('think_s')} s" if p.get("think_s") else ""
    return f"closed loop, {p.get('inflight')} in flight per connection{think}"


def _verdict(doc: dict) -> str:
    failed = doc.get("thresholds", {}).get("failed", [])
    verdict = table.verdict_line(doc.get("degradation", {}))
    d = doc.get("degradation", {})
    degraded = d.get("degraded_at") is not None or (d.get("judged") == 0 and d.get("skipped"))
    out = [f'<p class="banner {"bad" if degraded else "ok"}">{escape(verdict)}</p>']
    for s in doc.get("steps", []):
        if s.get("recovery"):
            rec = table.recovery_text(s["recovery"])
            out.append(f'<p class="banner {"ok" if s["recovery"].get("recovered") else "bad"}">'
                       f"Spike recovery (conns={escape(str(s['conns']))}): {escape(rec)}</p>")
    if failed:
        items = "".join(f"<li>{escape(str(f))}</li>" for f in failed)
        out.append(f'<div class="banner bad"><strong>Thresholds failed:</strong>'
                   f'<ul>{items}</ul></div>')
    else:
        out.append('<p class="banner ok">All thresholds held.</p>')
    return "\n".join(out)


def _step_table(doc: dict) -> str:
    steps = doc.get("steps", [])
    if not steps:
        return '<h2>Steps</h2><p class="note">no step was measured</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers(doc))
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in table.rows(doc))
    notes = table.legend(doc) + [n for s in steps for n in step_notes(s)]
    note_html = ('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes)
                 + "</ul>") if notes else ""
    return f"<h2>Steps</h2><table><tr>{head}</tr>{body}</table>{note_html}"


def step_notes(s: dict) -> list[str]:
    """One line per thing in step ``s`` a reader should not miss (the terminal's notes)."""
    out = table.step_notes(s)
    if s.get("partial"):
        out.append(f"conns={s['conns']}: step cut short")
    return out


def _kv_table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_text(v))}</td></tr>"
                   for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _text(v: Any) -> str:
    return "-" if v is None else str(v)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts and lists as ('a.b[0].c', value) rows."""
    if isinstance(d, dict) and d:
        return [r for k, v in d.items() for r in _flatten(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(d, list) and d and any(isinstance(v, dict | list) for v in d):
        return [r for i, v in enumerate(d) for r in _flatten(v, f"{prefix}[{i}]")]
    return [(prefix, d)]


# ---------------------------------------------------------------------------- charts


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the page: ``svg`` is inline SVG markup, or None with a ``note``."""

    key: str
    caption: str
    svg: str | None
    note: str = ""


def _chart_html(c: Chart) -> str:
    inner = c.svg if c.svg is not None else f'<p class="note">{escape(c.note)}</p>'
    return (f'<figure class="chart" id="chart-{escape(c.key)}">'
            f"<figcaption>{escape(c.caption)}</figcaption>\n{inner}</figure>")


def render_charts(doc: dict, series: Sequence[Columns],
                  monitor: Sequence[Columns | None]) -> list[Chart]:
    """Every chart of the page, in page order (sweep, over time, spectrum, resources)."""
    import matplotlib

    steps = doc.get("steps", [])
    if not steps:
        return [Chart("none", "Charts", None, "no step was measured")]
    monitor = list(monitor) + [None] * (len(steps) - len(monitor))
    tl = timeline(steps, series, monitor)
    with matplotlib.rc_context(_RC):
        out = [Chart("sweep", "Latency percentiles and throughput against load",
                     _svg(sweep_figure(doc), "sweep")),
               Chart("time", "Latency and throughput over time (steps end to end)",
                     _svg(time_figure(steps, series, tl), "time")),
               Chart("spectrum", "Latency percentile spectrum of each step",
                     _svg(spectrum_figure(steps), "spectrum"))]
        if any(m for m in monitor):
            out.append(Chart("resources", "Client and server CPU and memory over time",
                             _svg(resource_figure(steps, monitor, tl), "resources")))
        else:
            out.append(Chart("resources", "Client and server CPU and memory over time", None,
                             NO_SAMPLES))
    return out


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
    thr.plot(x, [s["throughput_msgs_s"] for s in steps], "o-", color="C2", label="msgs/s")
    thr.set(xlabel=name, ylabel="throughput (msgs/s)", title="throughput")
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
    for s, off in zip(steps, tl.offsets, strict=True):
        if off > 0:
            ax.axvline(off, color="0.4", ls="--", lw=0.8)
        if labels:
            ax.text(off, 1.0, " " + step_label(s), transform=tr, fontsize=7, va="bottom",
                    ha="left", color="0.3", clip_on=False)
        for st in s.get("stages") or []:
            x = off + float(st.get("start_s", 0))
            ax.axvline(x, color="C1", ls=":", lw=1)
            if labels:
                ax.text(x, 0.97, " " + str(st.get("label", "")), transform=tr, fontsize=7,
                        rotation=90, va="top", ha="left", color="C1")


def _joined(steps: list[dict], tl: Timeline, cols: Sequence[Columns | None], y: str,
            pick: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """One line over all steps (NaN between steps so they are not joined): x at the middle
    of each second, y from column ``y`` of the rows where ``pick(row_index, col)``."""
    xs, ys = [], []
    for k in range(len(steps)):
        c = cols[k] if k < len(cols) else None
        if not c or y not in c or "second" not in c:
            continue
        rows = [i for i in range(len(c["second"])) if pick is None or pick(i, c)]
        xs.extend([tl.offsets[k] + c["second"][i] + 0.5 for i in rows] + [math.nan])
        ys.extend([c[y][i] for i in rows] + [math.nan])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def time_figure(steps: list[dict], series: Sequence[Columns], tl: Timeline) -> Any:
    fig, (lat, thr) = _figure(2, 1, height=2.6)
    lat.plot(*_joined(steps, tl, series, "p99_ms"), ".-", color="C1", label="p99 per second")
    lat.set(ylabel="latency (ms)")
    _maybe_log(lat, "y", _joined(steps, tl, series, "p99_ms")[1])
    thr.plot(*_joined(steps, tl, series, "received"), ".-", color="C2", label="received/s")
    thr.plot(*_joined(steps, tl, series, "sent"), "-", color="C0", lw=0.8, alpha=0.6,
             label="sent/s")
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
    for k, s in enumerate(steps):
        color = f"C{k % 10}"
        for key, ls, suffix in (("latency", "-", ""), ("service", "--", " service")):
            d = s.get("histograms", {}).get(key)
            h = Histogram.from_dict(d) if d else None
            if h is None or h.total == 0:
                continue
            x, y = spectrum(h)
            ax.plot(x, y, ls, color=color, label=step_label(s) + suffix)
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
