"""JUnit XML of a run's thresholds and a comparison's regression limits, for CI systems.

One ``<testsuite>`` per kind: ``harness.thresholds`` holds one ``<testcase>`` per threshold
set in the run's config per step (plus "measured": did the step send anything), failed with
the figure and the limit, as the run's own threshold lines say them, and skipped (not
passed) when it held on a step the verdict left out (client-bound, shared core);
``harness.regressions`` holds one testcase per limited figure per matched step, failed when
the change is a regression beyond its limit, and ``<skipped message="reason"/>`` when no test
judged it (too few samples, or a step that measured the client or a busy machine: the
message says what it would have been). Pure: returns bytes, writes nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import fields, replace

from harness.analysis import bottleneck, judge
from harness.analysis.compare import regression_line
from harness.analysis.merge import thresholds_from
from harness.core.plan import Thresholds
from harness.core.safe import printable

NOTHING = "nothing measured"
OFF = Thresholds(**{f.name: None for f in fields(Thresholds)})


def threshold_cases(doc: dict) -> list[tuple[str, str, str | None]]:
    """(class name, test name, failure line or None) per threshold per step of ``doc``."""
    return [c[:3] for c in _threshold_cases(doc)]


def _threshold_cases(doc: dict) -> list[tuple[str, str, str | None, str | None]]:
    """... and, for a threshold that held on a step the verdict left out (client-bound, on a
    shared core, cut short), why it is skipped rather than passed."""
    th = thresholds_from((doc.get("config") or {}).get("thresholds") or {})
    target = doc.get("target") or "target"
    out: list[tuple[str, str, str | None, str | None]] = []
    steps = doc.get("steps", [])
    unit = judge.load_unit(steps)
    for k, step in enumerate(steps):
        why = (f"not judged: {bottleneck.skip_detail(step)}" if bottleneck.step_skipped(step)
               else None)
        where = f"step {k + 1} ({judge.step_name(step, unit)})"  # numbered as the table
        out.extend((*case, None if case[2] else why)
                   for case in _step_cases(step, where, th, f"harness.thresholds.{target}",
                                           unit))
    return out


def _step_cases(step: dict, where: str, th: Thresholds, classname: str,
                unit: str) -> list[tuple[str, str, str | None]]:
    lines = judge.threshold_failures([step], OFF, unit)
    out: list[tuple[str, str, str | None]] = [
        (classname, f"measured at {where}",
         next((ln for ln in lines if ln.startswith(NOTHING)), None))]
    for f in fields(Thresholds):
        limit = getattr(th, f.name)
        if limit is None:
            continue
        failed = [ln for ln in judge.threshold_failures(
            [step], replace(OFF, **{f.name: limit}), unit) if not ln.startswith(NOTHING)]
        out.append((classname, f"{f.name} <= {limit} at {where}"
                    if not f.name.startswith("min_") else f"{f.name} >= {limit} at {where}",
                    "; ".join(failed) or None))
    return out


def regression_cases(cmp: dict) -> list[tuple[str, str, str | None]]:
    """(class name, test name, failure line or None) per limited figure per matched step."""
    return [c[:3] for c in _regression_cases(cmp)]


def _regression_cases(cmp: dict) -> list[tuple[str, str, str | None, str | None]]:
    """... and the reason a figure was skipped (untested), or None."""
    out: list[tuple[str, str, str | None, str | None]] = []
    for s in cmp.get("steps", []):
        for f in s["figures"]:
            if f.get("limit") is None:
                continue
            failed = f"{s['label']}: {regression_line(f)}"
            shown = f"{f['figure']} within {f['limit']:g} of base at step {s['label']}"
            out.append(("harness.regressions", shown,
                        failed if f["verdict"] == "regression" else None, _skipped(f)))
    return out


def _skipped(f: dict) -> str | None:
    """Why an untested figure was not judged, and what it would have been."""
    if f["verdict"] != "untested":
        return None
    would = f.get("would_be")
    return f"untested: {f['test']}" + (f" (would be {would} had it been judged)"
                                       if would and would != "untested" else "")


def junit_xml(doc: dict | None = None, cmp: dict | None = None) -> bytes:
    """The XML document: thresholds of ``doc`` (a run), regressions of ``cmp``."""
    root = ET.Element("testsuites", name="harness")
    suites = [("harness.thresholds", _threshold_cases(doc) if doc else None),
              ("harness.regressions", _regression_cases(cmp) if cmp else None)]
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for name, cases in suites:
        if cases is None:
            continue
        tally = {"tests": len(cases), "failures": sum(c[2] is not None for c in cases),
                 "skipped": sum(c[2] is None and c[3] is not None for c in cases)}
        suite = ET.SubElement(root, "testsuite", {k: str(v) for k, v in tally.items()},
                              name=name, errors="0")
        for case in cases:
            _testcase(suite, *case)
        counts = {k: counts[k] + tally[k] for k in counts}
    for k, v in counts.items():
        root.set(k, str(v))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _testcase(suite: ET.Element, classname: str, test: str, failure: str | None,
              skipped: str | None) -> None:
    case = ET.SubElement(suite, "testcase", classname=printable(classname), name=printable(test))
    if failure is not None:
        el = ET.SubElement(case, "failure", message=printable(failure))
        el.text = printable(failure)
    elif skipped is not None:
        ET.SubElement(case, "skipped", message=printable(skipped))
