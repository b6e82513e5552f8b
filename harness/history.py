"""The runs of a results folder, newest first, with their key figures; and an HTML page that
charts p99 and throughput per scenario (run name and workload) over time.

A run's key step is its knee, the last healthy step of the degradation verdict, when it
has one, else its top (last) step. Figures are read from each run.json as written (ms,
msgs/s); nothing is recomputed. A folder whose run.json is missing or not a harness run is
skipped, with one line saying why. No printing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

from harness.report import results as results_mod
from harness.report.safe import printable

COLUMNS = ("date", "name", "workload", "host", "steps", "load", "p99 ms", "msgs/s", "verdict")


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run of the history. ``load`` is the key step's load (``unit``), ``at`` says
    which step that is ("knee" or "top")."""

    folder: str
    started_unix_s: float
    date: str
    name: str
    workload: str
    host: str
    steps: int
    load: float | None
    unit: str
    at: str
    p99_ms: float | None
    throughput_msgs_s: float | None
    verdict: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def cells(self) -> list:
        load = "-" if self.load is None else f"{self.load:g} {self.unit} ({self.at})"
        return [self.date, self.name, self.workload, self.host, self.steps, load,
                "-" if self.p99_ms is None else f"{self.p99_ms:.3f}",
                "-" if self.throughput_msgs_s is None else f"{self.throughput_msgs_s:,.1f}",
                self.verdict]


def key_step(doc: dict) -> tuple[dict | None, str]:
    """The knee (the last healthy step) when the verdict names one, else the top step."""
    steps = doc.get("steps") or []
    healthy = (doc.get("degradation") or {}).get("last_healthy")
    if healthy is not None:
        for s in steps:
            if healthy in (s.get("conns"), s.get("rate"), s.get("messages")):
                return s, "knee"
    return (steps[-1], "top") if steps else (None, "top")


def verdict(doc: dict) -> str:
    """A few words: partial, thresholds failed, degraded at, nothing judged, or ok."""
    d = doc.get("degradation") or {}
    failed = (doc.get("thresholds") or {}).get("failed") or []
    words = []
    if doc.get("partial"):
        words.append("partial")
    if failed:
        words.append(f"{len(failed)} threshold{'s' if len(failed) > 1 else ''} failed")
    if d.get("degraded_at") is not None:
        words.append(f"degraded at {d['degraded_at']} {d.get('unit', 'conns')} "
                     f"({d.get('rule')})")
    elif d.get("judged") == 0 and d.get("skipped"):
        words.append("no step judged")
    return ", ".join(words) or "ok"


def _load(s: dict, unit: str) -> float | None:
    key = {"conns": "conns", "messages": "messages"}.get(unit, "rate")
    v = s.get(key) if key != "rate" else (s.get("rate") or s.get("conns"))
    return None if v is None else float(v)


def row_of(folder: Path, doc: dict) -> RunRow:
    env = doc.get("environment") or {}
    cfg = doc.get("config") or {}
    step, at = key_step(doc)
    unit = (doc.get("degradation") or {}).get("unit", "conns")
    lat = (step or {}).get("latency_ms") or {}
    return RunRow(
        folder=str(folder), started_unix_s=float(env.get("started_unix_s") or 0.0),
        date=str(env.get("started_utc") or "-"), name=printable(str(cfg.get("name") or "-")),
        workload=printable(str(doc.get("workload") or "-")),
        host=printable(str(env.get("host") or "-")), steps=len(doc.get("steps") or []),
        load=_load(step, unit) if step else None, unit=unit, at=at,
        p99_ms=lat.get("p99"),
        throughput_msgs_s=(step or {}).get("throughput_msgs_s"), verdict=verdict(doc))


def list_runs(base: str | Path) -> tuple[list[RunRow], list[str]]:
    """Every run folder directly under ``base``, newest first, and one line per folder
    skipped. Raises OSError when ``base`` cannot be listed."""
    rows, skipped = [], []
    for folder in sorted(p for p in Path(base).iterdir() if p.is_dir()):
        try:
            rows.append(row_of(folder, results_mod.read_run(folder)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            skipped.append(f"{folder}: skipped, not a readable harness run ({exc})")
    rows.sort(key=lambda r: (r.started_unix_s, r.folder), reverse=True)
    return rows, skipped


def scenarios(rows: list[RunRow]) -> dict[str, list[RunRow]]:
    """Runs grouped by scenario ("name / workload"), each group oldest first."""
    out: dict[str, list[RunRow]] = {}
    for r in sorted(rows, key=lambda r: r.started_unix_s):
        out.setdefault(f"{r.name} / {r.workload}", []).append(r)
    return out


def render_html(rows: list[RunRow], title: str = "harness history") -> str:
    """A self-contained page: one chart of p99 and throughput over time per scenario, then
    the table of runs (newest first)."""
    from harness.report import charts, html

    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r.cells()) + "</tr>"
                   for r in rows)
    parts = [html._PAGE_HEAD.format(title=escape(title), css=html._CSS),
             f"<h1>{escape(title)}</h1>", "<h2>Scenarios over time</h2>"]
    groups = scenarios(rows)
    if not groups:
        parts.append('<p class="note">no run found</p>')
    for c in charts.history_charts(groups):
        parts.append(html._chart_html(c))
    parts.append(f"<h2>Runs</h2><table><tr>{head}</tr>{body}</table>")
    parts.append("</body>\n</html>\n")
    return printable("\n".join(parts), keep="\t\n\r")
