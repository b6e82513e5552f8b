"""The live page's per-second charts and table drawn in Python, as inline SVG, for
report.html (which runs no script). Same records (:func:`harness.report.live.feed.live_events`),
same series, axes and colours as page.js, so the report shows what the page showed at the
end. Latency ms (log axis), throughput msgs/s, x: seconds of the steps' measure windows
laid end to end. Every string is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
PCT = ("p50", "p90", "p99", "p99.9", "max")
W, H, L, R, T, B = 560, 220, 52, 8, 8, 24


def timeline(events: Sequence[tuple[str, Any]]) -> list[dict]:
    """Every final record in order, each with ``x``: seconds since the first step."""
    out: list[dict] = []
    offset = 0
    for kind, data in events:
        if kind == "final":
            out += [dict(r, x=offset + r["s"]) for r in data["records"]]
            offset += len(data["records"])
    return out


def step_bounds(events: Sequence[tuple[str, Any]]) -> list[tuple[int, Any]]:
    """(x where each step starts, its conns), as page.js marks them."""
    conns = {d["step"]: d.get("conns") for k, d in events if k == "step_start"}
    out, offset = [], 0
    for kind, data in events:
        if kind == "final":
            out.append((offset, conns.get(data["step"])))
            offset += len(data["records"])
    return out


def _fmt(v: float) -> str:
    a = abs(v)
    return f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 10 else \
        f"{v:.3f}" if a >= 0.1 else f"{v:.3g}"


def chart(chart_id: str, title: str, series: list[dict], log: bool = False,
          bounds: Sequence[tuple[int, Any]] = ()) -> str:
    """One chart: ``series`` of {name, color, pts [(x, y)], dash, bars (pts (x, y, base))}."""
    legend = "".join(f'<span style="color:{s["color"]}">&#9632; {escape(s["name"])}</span> '
                     for s in series)
    head = f'<div class="live-chart"><div><b>{escape(title)}</b></div><div>{legend}</div>'
    ys = [p[1] + (p[2] if s.get("bars") else 0) for s in series for p in s["pts"]
          if p[1] is not None]
    if not ys:
        return head + "<p>no data</p></div>"
    xs = [p[0] for s in series for p in s["pts"]]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    pos = [y for y in ys if y > 0]
    log = log and bool(pos) and len(pos) == len(ys)
    y0, y1 = (math.log10(min(pos)), math.log10(max(pos))) if log else (0.0, max(max(ys), 1))
    y1 = y1 if y1 > y0 else y0 + 1

    def fy(y: float) -> float:
        return math.log10(max(y, 1e-9)) if log else y

    def px(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def py(y: float) -> float:
        return T + (1 - (fy(y) - y0) / (y1 - y0)) * (H - T - B)

    parts = [f'<svg viewBox="0 0 {W} {H}" data-chart="{escape(chart_id)}" '
             f'style="width:100%;height:{H}px">',
             f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#999"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#999"/>']
    for f in (0.0, 0.5, 1.0):
        v = 10 ** (y0 + f * (y1 - y0)) if log else y0 + f * (y1 - y0)
        parts.append(f'<text x="{L - 4}" y="{T + (1 - f) * (H - T - B) + 4:.1f}" '
                     f'text-anchor="end" font-size="10" fill="#555">{_fmt(v)}</text>')
    parts.append(f'<text x="{W - R}" y="{H - 6}" text-anchor="end" font-size="10" '
                 f'fill="#555">{x1} s</text>')
    for x, conns in bounds:
        if x0 <= x <= x1:
            parts.append(f'<line x1="{px(x):.1f}" y1="{T}" x2="{px(x):.1f}" y2="{H - B}" '
                         f'stroke="#bbb" stroke-dasharray="2,3"/><text x="{px(x) + 3:.1f}" '
                         f'y="{T + 9}" font-size="9" fill="#777">{escape(str(conns))} '
                         f'conns</text>')
    for s in series:
        parts += _bars(s, px, py, x1 - x0) if s.get("bars") else _line(s, px, py, log)
    return head + "".join(parts) + "</svg></div>"


def _line(s: dict, px: Any, py: Any, log: bool) -> list[str]:
    pts = [p for p in s["pts"] if p[1] is not None and (not log or p[1] > 0)]
    if not pts:
        return []
    dash = "5,3" if s.get("dash") else "none"
    coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
    return [f'<polyline points="{coords}" fill="none" stroke="{s["color"]}" '
            f'stroke-width="1.6" stroke-dasharray="{dash}" data-points="{len(pts)}"/>']


def _bars(s: dict, px: Any, py: Any, span: float) -> list[str]:
    w = max((W - L - R) / (span + 1) - 1, 1)
    return [f'<rect x="{px(x) - w / 2:.1f}" y="{py(base + n):.1f}" width="{w:.1f}" '
            f'height="{max(py(base) - py(base + n), 1):.1f}" fill="{s["color"]}"/>'
            for x, n, base in s["pts"] if n]


def charts(events: Sequence[tuple[str, Any]], deliveries: bool) -> str:
    """The throughput, latency and error charts of the live page, from its final records."""
    t, marks = timeline(events), step_bounds(events)
    thr: list[dict[str, Any]] = [
        {"name": "deliveries/s" if deliveries else "replies/s", "color": COLORS[2],
         "pts": [(r["x"], r["received"]) for r in t]},
        {"name": "requests/s", "color": COLORS[0], "pts": [(r["x"], r["sent"]) for r in t]}]
    lat: list[dict[str, Any]] = [
        {"name": name, "color": COLORS[i], "pts": [(r["x"], r["p"][i]) for r in t]}
        for i, name in enumerate(PCT)]
    lat.append({"name": "step p99 so far", "color": COLORS[2], "dash": True,
                "pts": [(r["x"], r["cum"][2]) for r in t]})
    err: list[dict[str, Any]] = [{"name": "errors", "color": COLORS[3], "bars": True,
            "pts": [(r["x"], r["errors"], 0) for r in t]}]
    return "".join([
        chart("throughput", "Throughput per second (msgs/s)", thr, bounds=marks),
        chart("latency", "Latency per second: p50 p90 p99 p99.9 max (ms); dashed: step so "
              "far p99", lat, log=True, bounds=marks),
        chart("errors", "Errors per second", err, bounds=marks)])


def seconds_table(events: Sequence[tuple[str, Any]]) -> str:
    """Every second of every step: counts, its percentiles, the step's p99 so far."""
    head = ("<tr><th>step</th><th>s</th><th>sent</th><th>received</th><th>errors</th>" +
            "".join(f"<th>{p} ms</th>" for p in PCT) + "<th>step p99 ms</th></tr>")
    rows = []
    for r in timeline(events):
        cells = [r["step"], r["s"], r["sent"], r["received"], r["errors"], *r["p"],
                 r["cum"][2]]
        rows.append(f'<tr data-step="{r["step"]}" data-s="{r["s"]}">' +
                    "".join(f"<td>{'' if c is None else c}</td>" for c in cells) + "</tr>")
    return f'<table id="seconds">{head}{"".join(rows)}</table>'
