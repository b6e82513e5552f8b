"""Comparing run folders: read two runs (or a run just written and its baseline), compare
them with :mod:`harness.analysis.compare`, write the HTML page and JUnit XML. No printing and no
exits: :mod:`harness.cli` shows what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.analysis import compare as compare_mod
from harness.report import results as results_mod

PAGE_NAME = "compare.html"


class CompareInputError(ValueError):
    """A run folder that cannot be read, or runs that cannot be compared (one line)."""


@dataclass(frozen=True, slots=True)
class Pair:
    base: dict
    new: dict
    series: tuple[list[dict], list[dict]]


def read_run(folder: str, role: str) -> tuple[dict, list[dict]]:
    """A run's document and its per-second series (one dict per step)."""
    try:
        doc = results_mod.read_run(folder)
        return doc, [results_mod.read_series(folder, k) for k in range(len(doc["steps"]))]
    except results_mod.SchemaError as exc:
        raise CompareInputError(f"{role}: {exc}") from None
    except OSError as exc:
        raise CompareInputError(f"{role}: cannot read {folder}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CompareInputError(f"{role}: not a harness run folder: {exc}") from None


def read_pair(base: str, new: str) -> Pair:
    (bdoc, bser), (ndoc, nser) = read_run(base, "base"), read_run(new, "new")
    return Pair(bdoc, ndoc, (bser, nser))


def compare(pair: Pair, names: tuple[str, str], limits: dict[str, float] | None,
            force: bool) -> dict:
    """The comparison document; CompareInputError when the runs cannot be compared."""
    try:
        return compare_mod.compare_runs(pair.base, pair.new, pair.series, limits, force, names)
    except compare_mod.CompareError as exc:
        raise CompareInputError(str(exc)) from None
    except (KeyError, TypeError, AttributeError) as exc:  # a run.json edited by hand
        raise CompareInputError(f"not a harness run folder: a step lacks or mangles {exc}"
                                ) from None


def page_path(new: str) -> Path:
    """compare.html beside NEW's run.json."""
    p = Path(new)
    return (p.parent if p.is_file() else p) / PAGE_NAME


def write_page(cmp: dict, pair: Pair, path: Path) -> tuple[Path | None, str | None]:
    """The HTML page written atomically, or None and why not (it never fails a compare)."""
    from harness.report import compare_html
    try:
        results_mod.write_atomic(path, compare_html.render(cmp, pair.base, pair.new).encode())
        return path, None
    except Exception as exc:
        return None, f"comparison page not written: {type(exc).__name__}: {exc}"


def write_junit(path: str, doc: dict | None, cmp: dict | None) -> str | None:
    """JUnit XML written atomically to ``path``; None, or why it was not written."""
    from harness.report import junit
    try:
        results_mod.write_atomic(Path(path), junit.junit_xml(doc, cmp))
        return None
    except OSError as exc:
        return f"--junit: cannot write {path}: {exc.strerror or exc}"
