"""The runs of a results folder, newest first, with their key figures; and an HTML page that
charts p99 and throughput per plan over time.

Runs are grouped by their plan signature, what makes two runs comparable: the targets, the
workload, the steps (connections, duration or message count, rate, listen-only
connections, stages, and growth until degraded), the pacing (closed or open loop, in
flight, rate, think time), the warm-up, the message size and framing of stamped frames,
and the request table, message mix and user classes. Not in it: the run's name, seed,
thresholds, environment, worker count and results folder. So a shortened run of a plan and
its full run are two trends, and a plan renamed stays one.

A run's key step is its knee, the last healthy step of the degradation verdict, when it
has one, else its top (last) step. Figures are read from each run.json as written (ms,
msgs/s); nothing is recomputed. A folder whose run.json is missing or not a harness run is
skipped, with one line saying why. No printing.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

import orjson

from harness.core.safe import printable
from harness.report import results as results_mod

COLUMNS = ("date", "name", "plan", "workload", "host", "steps", "load", "p99 ms", "msgs/s",
           "verdict")


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
    plan: str = "-"  # the plan signature's short id (8 hex digits)
    plan_text: str = ""  # ... and in words

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def cells(self) -> list:
        load = "-" if self.load is None else f"{self.load:g} {self.unit} ({self.at})"
        return [self.date, self.name, self.plan, self.workload, self.host, self.steps, load,
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
        throughput_msgs_s=(step or {}).get("throughput_msgs_s"), verdict=verdict(doc),
        plan=plan_id(doc), plan_text=printable(plan_text(doc)))


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


SIGNATURE_KEYS = ("targets", "workload", "until_degraded", "grow", "increment", "max_conns",
                  "pacing", "warmup_s", "mix", "requests", "users")
STEP_KEYS = ("conns", "duration_s", "messages", "rate", "listen", "stages")


def signature(doc: dict) -> dict:
    """What makes two runs comparable (see the module's docstring), from the resolved
    config as run.json holds it."""
    cfg = doc.get("config") or {}
    sig = {k: cfg.get(k) for k in SIGNATURE_KEYS}
    sig["steps"] = [{k: st.get(k) for k in STEP_KEYS} for st in cfg.get("steps") or ()]
    if doc.get("protocol", "framed") == "framed":
        sig["framing"], sig["size"] = cfg.get("framing"), cfg.get("size_spec", cfg.get("size"))
    return sig


def plan_id(doc: dict) -> str:
    """The signature's short id: 8 hex digits of its SHA-256."""
    raw = orjson.dumps(signature(doc), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:8]


def _loads(values: list) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def plan_text(doc: dict) -> str:
    """The signature in words: "127.0.0.1:5000, conns 10,100 x 10 s, then doubling to
    3200, closed loop 1 in flight, think 1-5 s"."""
    cfg = doc.get("config") or {}
    steps = cfg.get("steps") or []
    parts = [str(doc.get("target") or "-")]
    if steps and all(st.get("messages") is not None for st in steps):
        parts.append(f"messages {_loads([st['messages'] for st in steps])} on "
                     f"{_loads(sorted({st.get('conns') for st in steps}))} conns")
    elif steps:
        secs = sorted({st.get("duration_s") or 0 for st in steps})
        parts.append(f"conns {_loads([st.get('conns') for st in steps])} x "
                     f"{_loads(secs)} s")
    if cfg.get("until_degraded"):
        parts.append(f"then {cfg.get('grow', 'double')} to {cfg.get('max_conns')}")
    pacing = cfg.get("pacing") or {}
    if pacing.get("mode") == "open":
        parts.append(f"open loop {pacing.get('rate')}/s per connection")
    elif pacing:
        lo, hi = pacing.get("think_s") or 0, pacing.get("think_max_s") or 0
        think = f", think {lo:g}-{hi:g} s" if hi > lo else f", think {lo:g} s" if lo else ""
        parts.append(f"closed loop {pacing.get('inflight')} in flight{think}")
    return ", ".join(parts)


def scenarios(rows: list[RunRow]) -> dict[str, list[RunRow]]:
    """Runs grouped by plan signature, each group oldest first, titled by its newest run's
    name and workload, the plan's id and the plan in words."""
    groups: dict[str, list[RunRow]] = {}
    for r in sorted(rows, key=lambda r: r.started_unix_s):
        groups.setdefault(r.plan, []).append(r)
    return {f"{g[-1].name} / {g[-1].workload} (plan {plan}: {g[-1].plan_text})": g
            for plan, g in groups.items()}


def render_html(rows: list[RunRow], title: str = "harness history") -> str:
    """A self-contained page: one chart of p99 and throughput over time per plan, then
    the table of runs (newest first)."""
    from harness.report import history_charts, html

    parts = [html._PAGE_HEAD.format(title=escape(title), css=html._CSS),
             f"<h1>{escape(title)}</h1>", "<h2>Plans over time</h2>",
             '<p class="note">Runs are grouped by plan: the same targets, workload, steps, '
             "pacing, warm-up, message size and requests (not the run's name).</p>"]
    groups = scenarios(rows)
    if not groups:
        parts.append('<p class="note">no run found</p>')
    for c in history_charts.history_charts(groups):
        parts.append(html._chart_html(c))
    parts.append("<h2>Runs</h2>" + html.table_html(list(COLUMNS), [r.cells() for r in rows]))
    parts.append("</body>\n</html>\n")
    return printable("\n".join(parts), keep="\t\n\r")
