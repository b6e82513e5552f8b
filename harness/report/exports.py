"""The export files of a run folder, written with the run (and by ``harness export`` for an
existing folder): ``latency-step<k>.hlog`` per step (HdrHistogram interval logs,
:mod:`harness.report.hlog`) and ``metrics.prom`` (Prometheus text,
:mod:`harness.report.openmetrics`).
Each file is written atomically; a failure is returned as one line (the caller warns), and
never loses the run. No printing.
"""

from __future__ import annotations

from pathlib import Path

from harness.report import hlog, openmetrics
from harness.report import results as results_mod

METRICS_NAME = "metrics.prom"


def hlog_files(folder: Path, doc: dict) -> list[Path]:
    """Write one .hlog per step of ``doc`` (run.json with histograms) into ``folder``.
    Raises ImportError without the ``hdrhistogram`` package, OSError if a write fails."""
    paths = []
    for k in range(len(doc.get("steps", []))):
        path = folder / hlog.hlog_name(k)
        results_mod.write_atomic(path, hlog.step_hlog(doc, k).encode())
        paths.append(path)
    return paths


def metrics_file(folder: Path, doc: dict) -> Path:
    path = folder / METRICS_NAME
    results_mod.write_atomic(path, openmetrics.run_text(doc, folder.name).encode())
    return path


def write_exports(folder: Path, doc: dict) -> list[str]:
    """Both exports of a just-written run; what could not be written, one line each."""
    problems = []
    try:
        hlog_files(folder, doc)
    except ImportError as exc:
        problems.append(f".hlog files not written: the hdrhistogram package is missing ({exc})")
    except (OSError, ValueError) as exc:
        problems.append(f".hlog files not written: {exc}")
    try:
        metrics_file(folder, doc)
    except (OSError, ValueError) as exc:
        problems.append(f"{METRICS_NAME} not written: {exc}")
    return problems
