"""The report's charts over time: each step's measure window laid end to end on one time
axis (s), latency and throughput per second, and client and server CPU (% of one core) and
memory (MB) per second, with step and stage boundaries marked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.report.figures import Columns, maybe_log, new_figure, step_labels


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
    fig, (lat, thr) = new_figure(2, 1, height=2.6)
    lat.plot(*_joined(steps, tl, series, "p99_ms"), ".-", color="C1", label="p99 per second")
    lat.set(ylabel="latency (ms)")
    maybe_log(lat, "y", _joined(steps, tl, series, "p99_ms")[1])
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


def _roles(monitor: Sequence[Columns | None]) -> list[str]:
    seen: dict[str, None] = {}
    for m in monitor:
        for r in (m or {}).get("role", []):
            seen[str(r)] = None
    return sorted(seen, key=lambda r: (r == "server", r))


def resource_figure(steps: list[dict], monitor: Sequence[Columns | None], tl: Timeline) -> Any:
    fig, (cpu, mem) = new_figure(2, 1, height=2.6)
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
