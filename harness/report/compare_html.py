"""The HTML comparison page of two runs: the step table of the comparison, the two runs'
latency percentiles and throughput against load on one chart, and each matched step's two
percentile spectra overlaid. Self-contained (inline SVG), like report.html; the charts are
drawn with harness.report.figures' helpers from the runs' figures and merged histograms (nothing
is recomputed here). Units: latency ms, throughput msgs/s.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np

from harness.core.histogram import Histogram
from harness.core.safe import printable, printable_doc
from harness.report import charts, figures
from harness.report.compare_table import HEADERS, rows
from harness.report.html import _CSS, _PAGE_HEAD

RUNS = (("base", "C0", "--"), ("new", "C3", "-"))


def render(cmp: dict, base: dict, new: dict) -> str:
    """The page: verdict, a table per matched step, the curves against load, the spectra."""
    import matplotlib

    cmp, base, new = printable_doc(cmp), printable_doc(base), printable_doc(new)
    title = "harness comparison"
    parts = [_PAGE_HEAD.format(title=escape(title), css=_CSS), f"<h1>{escape(title)}</h1>",
             f"<p>base: <code>{escape(cmp['base'])}</code><br>"
             f"new: <code>{escape(cmp['new'])}</code></p>", _verdict(cmp)]
    for s in cmp["steps"]:
        head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                       for r in rows(s))
        parts.append(f"<h2>Step {escape(s['label'])}</h2><table><tr>{head}</tr>{body}</table>")
    pairs = [(base["steps"][s["base_step"]], new["steps"][s["new_step"]]) for s in cmp["steps"]]
    with matplotlib.rc_context(figures.RC):
        if len(pairs) > 1:
            parts.append(_figure("sweep", charts.SWEEP_CAPTION,
                                 figures.to_svg(sweep_figure(pairs), "cmp-sweep")))
        else:  # one point is no curve: the figures are in the table above
            parts.append(_figure("sweep", charts.SWEEP_CAPTION, '<p class="note">One matched '
                                 "step: curves against load need two steps or more.</p>"))
        parts.append(_figure("spectrum", "Latency percentile spectra, base and new",
                             figures.to_svg(spectrum_figure(pairs), "cmp-spectrum")))
    parts.append("</body>\n</html>\n")
    return printable("\n".join(parts), keep="\t\n\r")


def _verdict(cmp: dict) -> str:
    warn = "".join(f'<p class="banner warn">{escape(w)}</p>' for w in cmp.get("warnings", []))
    would = "".join(f"<li>{escape(r)}</li>" for r in cmp.get("would_fail", ()))
    would = f"<p>Beyond the limits had they been judged:</p><ul>{would}</ul>" if would else ""
    if not cmp["judged"]:
        return warn + ('<div class="banner warn"><strong>Inconclusive:</strong> no step could '
                       "be judged (client-bound, shared core or cut short), so no verdict on "
                       f"a regression either way.{would}</div>")
    if not cmp["regressions"]:
        return warn + '<p class="banner ok">No regression beyond the limits.</p>' + (
            f'<div class="banner warn">{would}</div>' if would else "")
    items = "".join(f"<li>{escape(r)}</li>" for r in cmp["regressions"])
    return warn + f'<div class="banner bad"><strong>Regressions:</strong><ul>{items}</ul></div>'


def _figure(key: str, caption: str, svg: str) -> str:
    return (f'<figure class="chart" id="chart-{key}"><figcaption>{escape(caption)}'
            f"</figcaption>\n{svg}</figure>")


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def sweep_figure(pairs: list[tuple[dict, dict]]) -> Any:
    """p50 and p99 (left) and throughput (right) against load, base dashed, new solid."""
    fig, (lat, thr) = figures.new_figure(1, 2, height=3.6)
    for r, (run, color, ls) in enumerate(RUNS):
        steps = [p[r] for p in pairs]
        name, x = figures.load_axis(steps)
        for key, marker in (("p50", "o"), ("p99", "s")):
            lat.plot(x, [_num(s["latency_ms"].get(key)) for s in steps], marker + ls,
                     color=color, label=f"{run} {key}", alpha=1.0 if key == "p99" else 0.6)
        thr.plot(x, [s["throughput_msgs_s"] for s in steps], "o" + ls, color=color, label=run)
        lat.set(xlabel=name, ylabel="latency (ms)", title="latency percentiles")
        thr.set(xlabel=name, ylabel="throughput (msgs/s)", title="throughput")
        figures.maybe_log(lat, "x", x)
        figures.maybe_log(thr, "x", x)
    thr.set_ylim(bottom=0)
    for ax in (lat, thr):
        ax.legend(loc="best")
    return fig


def spectrum_figure(pairs: list[tuple[dict, dict]]) -> Any:
    """Each matched step's percentile spectrum, base dashed and new solid, one color a
    step (a panel per step when there are several)."""
    fig, axes = figures.new_figure(len(pairs), 1, height=3.4)
    for ax, pair in zip(axes, pairs, strict=True):
        top = 1.0
        for s, (run, color, ls) in zip(pair, RUNS, strict=True):
            d = s.get("histograms", {}).get("latency")
            h = Histogram.from_dict(d) if d else None
            if h is None or h.total == 0:
                continue
            x, y = charts.spectrum(h)
            ax.plot(x, y, ls, color=color, label=f"{run} {figures.step_label(s)}")
            top = max(top, float(x[-1]))
        ticks = np.arange(0, math.ceil(top) + 1)
        ax.set_xticks(ticks, [charts.nines_label(t) for t in ticks.tolist()])
        ax.set_xlim(0, math.ceil(top))
        figures.log_axis(ax, "y")
        ax.set(xlabel="percentile", ylabel="latency (ms)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
    return fig
