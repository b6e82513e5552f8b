"""The drawing kit the report's charts share: matplotlib settings, a figure without pyplot,
a figure as inline SVG, log axes with plain labels, and the names of steps and of what a
sweep varies. Units as in harness.report.charts; matplotlib is imported inside the
functions that draw."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.analysis.judge import load_unit

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType


Columns = dict[str, list]  # CSV column name -> values (floats, NaN for an empty cell, or str)
RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none", "text.parse_math": False, "font.size": 9, "axes.grid": True,
    "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "legend.fontsize": 8, "legend.frameon": False}
NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
WIDTH_IN = 11.0


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the page: ``svg`` is inline SVG markup, or None with a ``note``."""

    key: str
    caption: str
    svg: str | None
    note: str = ""


def new_figure(rows: int, cols: int = 1, height: float = 3.2) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)


def to_svg(fig: Any, prefix: str) -> str:
    """``fig`` as SVG markup fit to sit inside HTML: no XML prolog, DOCTYPE or namespace
    URLs, and every id (and reference to it) prefixed so charts cannot collide."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=NO_METADATA)
    s = buf.getvalue()
    s = s[s.index("<svg"):]
    s = _STYLE.sub("", _XMLNS.sub("", s, count=2), count=1)
    s = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', s)
    return _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", s)


def num(v: Any) -> float:
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


def maybe_log(ax: Any, axis: str, values: Iterable[float]) -> None:
    """A log scale on ``axis`` when the values span a factor of 8 or more."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size and v.min() > 0 and v.max() / v.min() >= 8:
        log_axis(ax, axis)


def log_axis(ax: Any, axis: str) -> None:
    """Log scale with plain tick labels ("0.1", "20"), not mathtext (which is off)."""
    from matplotlib.ticker import FuncFormatter, LogFormatter

    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    a.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
