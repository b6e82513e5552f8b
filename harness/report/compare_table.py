"""The terminal view of a comparison (harness.analysis.compare's document): per matched step, a row
per figure with base, new, the change and its verdict, then the regressions. Text only.

Units: latency ms, throughput msgs/s, the error rate in %, lost as a count; the change is
relative (%) for latency and throughput, in percentage points for the error rate, a count
for lost.
"""

from __future__ import annotations

from tabulate import tabulate

from harness.core.safe import printable_doc

HEADERS = ("figure", "base", "new", "change", "verdict", "test")
NAMES = {"p999": "p99.9", "errors": "error rate"}


def _value(f: dict, v: float | None) -> str:
    if v is None:
        return "-"
    if f["figure"] == "errors":
        return f"{v:.3%}"
    if f["figure"] == "lost":
        return str(v)
    return f"{v:.{1 if f['figure'] == 'throughput' else 3}f} {f['unit']}"


def _change(f: dict) -> str:
    c = f["change"]
    if c is None:
        return "-"
    if f["figure"] == "errors":
        return f"{c * 100:+.3f} pt"
    if f["figure"] == "lost":
        return f"{c:+d}"
    return f"{c:+.1%}"


def _verdict(f: dict) -> str:
    v = f["verdict"]
    if f.get("would_be") == "regression":
        return "untested (REGRESSION had it been judged)"
    return v.upper() if v == "regression" else v


def verdict_lines(cmp: dict) -> list[str]:
    """The comparison's verdict: its regressions; "inconclusive" when no step was judged
    (never "no regression"); the changes that would have failed, had they been judged."""
    out = [f"REGRESSION: {r}" for r in cmp["regressions"]]
    if not cmp["judged"]:
        out.append("INCONCLUSIVE: no step could be judged (client-bound, shared core or cut "
                   "short): no verdict on a regression either way")
    elif not cmp["regressions"]:
        out.append("no regression beyond the limits")
    out.extend(f"would fail, had it been judged: {r}" for r in cmp.get("would_fail", ()))
    return out


def rows(step: dict) -> list[list[str]]:
    out = [[NAMES.get(f["figure"], f["figure"]), _value(f, f["base"]), _value(f, f["new"]),
            _change(f), _verdict(f), f["test"] + (f", p={f['p_value']:.2g}"
                                                  if f.get("p_value") is not None else "")]
           for f in step["figures"]]
    sh = step["shift"]
    if sh.get("a") is not None:
        out.append(["distribution", "", "", f"A={sh['a']:.2f}", sh["verdict"],
                    f"Mann-Whitney U, p={sh['p_value']:.2g}"])
    return out


def render(cmp: dict) -> str:
    """The whole comparison as text: a block per step, then warnings and the verdict."""
    cmp = printable_doc(cmp)
    parts = [f"base: {cmp['base']}", f"new:  {cmp['new']}"]
    for s in cmp["steps"]:
        samples = s.get("samples", {})
        parts.append(f"\nstep {s['label']} (latency samples: base {samples.get('base')}, "
                     f"new {samples.get('new')})")
        parts.append(tabulate(rows(s), headers=HEADERS, disable_numparse=True))
        parts.extend(f"  note: {n}" for n in s.get("notes", []))
    parts.extend(f"warning: {w}" for w in cmp.get("warnings", []))
    parts.append("")
    parts.extend(verdict_lines(cmp))
    return "\n".join(parts)
