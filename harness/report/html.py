"""The HTML report: one self-contained ``report.html`` in the run folder, readable offline.

Library: matplotlib (see :mod:`harness.report.charts`), each chart rendered to SVG and
inlined in the page, because it needs no JavaScript and no network and keeps the page small
(where plotly would inline a script of several MB), and it is the long-maintained standard
companion of numpy.

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
import math
import re
import time
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness.core.safe import printable, printable_doc
from harness.report import breakdown, facts, results, table
from harness.report.charts import NO_SAMPLES, Chart, Columns, nines_label, render_charts, spectrum
from harness.report.live import svg as live_svg
from harness.report.live.feed import live_events

REPORT_NAME = "report.html"
# Chart names that callers of this module reach through it (they live in report.charts).
__all__ = ["NO_SAMPLES", "REPORT_NAME", "Columns", "nines_label", "read_columns",
           "render_html", "spectrum", "write_html"]


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
    parts.append(_live_section(doc, series))
    parts.append("<h2>Environment</h2>" + _kv_table(_flatten(doc.get("environment", {}))))
    parts.append(_configuration(doc))
    parts.append("</body>\n</html>\n")
    return printable("\n".join(parts), keep="\t\n\r")


def _live_section(doc: dict, series: Sequence[Columns]) -> str:
    """The live page's per-second charts and table (harness run --live), from the same
    per-second histograms and counts as the page had at the end, drawn as inline SVG."""
    events = live_events(doc, [{k: v for k, v in c.items() if k in LIVE_COLUMNS}
                               for c in series])
    deliveries = doc.get("delivery") == "broadcast"
    return ('<h2>Per second, as on the live page</h2>\n<div id="harness-live">' +
            live_svg.charts(events, deliveries) +
            '<details><summary>every second</summary><div class="live-scroll">' +
            live_svg.seconds_table(events) + "</div></details></div>")


LIVE_COLUMNS = ("second", "sent", "received", "errors")

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
.live-chart { display: inline-block; width: 49%; vertical-align: top; }
.live-scroll { max-height: 24em; overflow: auto; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.3em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; margin-top: 1.6em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f4f4f4; }
table.kv td, table.kv th { text-align: left; }
td.t { text-align: left; }
.banner { padding: 0.5em 0.8em; border-radius: 4px; margin: 0.5em 0; }
.ok { background: #e8f5e9; } .bad { background: #ffebee; } .warn { background: #fff8e1; }
figure.chart { margin: 1em 0; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
figure.chart svg * { stroke-linejoin: round; stroke-linecap: butt; }
figcaption { font-weight: 600; margin-bottom: 0.3em; }
p.note { color: #666; font-style: italic; }
ul.notes { margin: 0.4em 0; }
ul.legend { margin: 0.4em 0; color: #555; font-size: 0.92em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
pre.command { background: #f4f4f4; padding: 0.5em 0.8em; white-space: pre-wrap; }
details > summary { cursor: pointer; margin: 0.4em 0; }
"""


def _header(doc: dict, run_name: str) -> str:
    cfg = doc.get("config", {})
    pacing = cfg.get("pacing", {})
    framing = (f"{cfg['framing']} / {cfg.get('size')} B" if cfg.get("framing")
               and _framed(doc) else None)
    rows = [("target", doc.get("target")), ("workload", doc.get("workload")),
            ("delivery", doc.get("delivery")), ("date (UTC)", run_date(run_name)),
            ("pacing", _pacing_text(pacing, cfg.get("users") or []) if pacing else None),
            ("framing / size", framing), ("requests", _requests_text(cfg)),
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


UNFRAMED = ("http", "redis", "memcached")  # workloads whose bytes are their protocol's


def _framed(doc: dict) -> bool:
    """Whether the run's messages are stamped frames (so framing and size mean something);
    an HTTP, RESP or memcached run's requests are its protocol's own bytes."""
    protocol = doc.get("protocol")
    if protocol is not None:
        return protocol == "framed"
    return doc.get("workload") not in UNFRAMED


def _requests_text(cfg: dict) -> str | None:
    """"10 requests in 4 user classes (tables below)" for a request table."""
    n = len(cfg.get("requests") or ())
    if not n:
        return None
    classes = len(cfg.get("users") or ())
    return (f"{n} request{'s' if n > 1 else ''}"
            + (f" in {classes} user classes" if classes else "") + " (tables below)")


def _pacing_text(p: dict, users: list[dict]) -> str:
    if p.get("mode") == "open":
        return f"open loop, {p.get('rate')} msgs/s per step (latency from intended send)"
    out = f"closed loop, {p.get('inflight')} in flight per connection"
    if users:
        return out + ", think per user class: " + ", ".join(
            f"{u['name']} {breakdown.think_text(u.get('think_s'), u.get('think_max_s'))}"
            for u in users)
    think = breakdown.think_text(p.get("think_s"), p.get("think_max_s"))
    return out + ("" if think == "none" else f", think {think}")


def _verdict(doc: dict) -> str:
    failed = doc.get("thresholds", {}).get("failed", [])
    verdict = table.verdict_line(doc.get("degradation", {}))
    d = doc.get("degradation", {})
    unjudged = d.get("judged") == 0 and d.get("skipped")  # inconclusive (exit 4): amber
    kind = "bad" if d.get("degraded_at") is not None else "warn" if unjudged else "ok"
    out = [f'<p class="banner {kind}">{escape(verdict)}</p>']
    for s in doc.get("steps", []):
        if s.get("recovery"):
            rec = facts.recovery_text(s["recovery"])
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
    n = facts.notes(doc)
    out = ["<h2>Steps</h2>" + table_html(table.headers(doc), table.rows(doc)),
           _list(n.legend, "legend"), _list(n.steps, "notes"), _list(n.remarks, "notes")]
    for title, (head, body) in breakdown.side_tables(doc).items():
        out.append(f"<h3>{escape(title.capitalize())}</h3>" + table_html(head, body))
    return "\n".join(o for o in out if o)


def table_html(head: list[str], body: list[list]) -> str:
    """A table of text: numbers right-aligned, words left-aligned, everything escaped."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    rows = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in body)
    return f"<table><tr>{th}</tr>{rows}</table>"


_NUMBER = re.compile(r"^[-+]?[\d,.]*\d[\d,.]*\*?( [A-Z -]+)?$|^-$")


def _td(cell: Any) -> str:
    """A cell: numbers (and "-", "98 CLIENT-BOUND") right-aligned, words left-aligned."""
    text = str(cell)
    return (f"<td>{escape(text)}</td>" if _NUMBER.match(text)
            else f'<td class="t">{escape(text)}</td>')


def _list(lines: list[str], css: str) -> str:
    if not lines:
        return ""
    return f'<ul class="{css}">' + "".join(f"<li>{escape(x)}</li>" for x in lines) + "</ul>"


def _configuration(doc: dict) -> str:
    """The command line first, then the resolved configuration folded away."""
    rows = _flatten(doc.get("config", {}))
    command = table.command_line(doc)
    head = (f'<p>Command line:</p><pre class="command">{escape(command)}</pre>'
            if command else '<p class="note">no command line recorded</p>')
    return (f"<h2>Configuration</h2>{head}<details><summary>Resolved configuration "
            f"({len(rows)} keys)</summary>{_kv_table(rows)}</details>")


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


def _chart_html(c: Chart) -> str:
    inner = c.svg if c.svg is not None else f'<p class="note">{escape(c.note)}</p>'
    return (f'<figure class="chart" id="chart-{escape(c.key)}">'
            f"<figcaption>{escape(c.caption)}</figcaption>\n{inner}</figure>")


