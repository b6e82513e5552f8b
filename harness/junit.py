"""JUnit XML of a run's thresholds and a comparison's regression limits, for CI systems.

One ``<testsuite>`` per kind: ``harness.thresholds`` holds one ``<testcase>`` per threshold
set in the run's config per step (plus "measured": did the step send anything), failed with
the figure and the limit, as the run's own threshold lines say them;
``harness.regressions`` holds one testcase per limited figure per matched step, failed when
the change is a regression beyond its limit. Pure: returns bytes, writes nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import fields, replace

from harness import aggregate
from harness.compare import regression_line
from harness.merge import thresholds_from
from harness.plan import Thresholds
from harness.report.safe import printable

NOTHING = "nothing measured"
OFF = Thresholds(**{f.name: None for f in fields(Thresholds)})


def threshold_cases(doc: dict) -> list[tuple[str, str, str | None]]:
    """(class name, test name, failure line or None) per threshold per step of ``doc``."""
    th = thresholds_from((doc.get("config") or {}).get("thresholds") or {})
    target = doc.get("target") or "target"
    out: list[tuple[str, str, str | None]] = []
    steps = doc.get("steps", [])
    unit = aggregate.load_unit(steps)
    for k, step in enumerate(steps):
        where = f"step {k + 1} ({aggregate.step_name(step, unit)})"  # numbered as the table
        lines = aggregate.threshold_failures([step], OFF, unit)
        out.append((f"harness.thresholds.{target}", f"measured at {where}",
                    next((ln for ln in lines if ln.startswith(NOTHING)), None)))
        for f in fields(Thresholds):
            limit = getattr(th, f.name)
            if limit is None:
                continue
            failed = [ln for ln in aggregate.threshold_failures(
                [step], replace(OFF, **{f.name: limit}), unit) if not ln.startswith(NOTHING)]
            out.append((f"harness.thresholds.{target}", f"{f.name} <= {limit} at {where}"
                        if not f.name.startswith("min_") else f"{f.name} >= {limit} at {where}",
                        "; ".join(failed) or None))
    return out


def regression_cases(cmp: dict) -> list[tuple[str, str, str | None]]:
    """(class name, test name, failure line or None) per limited figure per matched step."""
    out: list[tuple[str, str, str | None]] = []
    for s in cmp.get("steps", []):
        for f in s["figures"]:
            if f.get("limit") is None:
                continue
            failed = f"{s['label']}: {regression_line(f)}"
            shown = f"{f['figure']} within {f['limit']:g} of base at step {s['label']}"
            out.append(("harness.regressions", shown,
                        failed if f["verdict"] == "regression" else None))
    return out


def junit_xml(doc: dict | None = None, cmp: dict | None = None) -> bytes:
    """The XML document: thresholds of ``doc`` (a run), regressions of ``cmp``."""
    root = ET.Element("testsuites", name="harness")
    suites = [("harness.thresholds", threshold_cases(doc) if doc else None),
              ("harness.regressions", regression_cases(cmp) if cmp else None)]
    total = failures = 0
    for name, cases in suites:
        if cases is None:
            continue
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)),
                              failures=str(sum(c[2] is not None for c in cases)), errors="0")
        for classname, test, failure in cases:
            case = ET.SubElement(suite, "testcase", classname=printable(classname),
                                 name=printable(test))
            if failure is not None:
                el = ET.SubElement(case, "failure", message=printable(failure))
                el.text = printable(failure)
        total += len(cases)
        failures += sum(c[2] is not None for c in cases)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
