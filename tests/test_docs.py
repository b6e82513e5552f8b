"""The docs live in the repository, and what they name exists: every relative link (and
its #anchor) and every repository path in README.md, docs/*.md and workloads/README.md
resolves; README.md stays a one-sitting read (under 450 lines); the design and the
performance pages exist; and the code cites the design as docs/DESIGN.md, the one that
exists. Pure file reading: no server, no subprocess."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DESIGN = ROOT / "docs/DESIGN.md"
README_MAX_LINES = 450

# The pages whose links and paths are checked.
PAGES = [ROOT / "README.md", ROOT / "workloads" / "README.md", *sorted(DOCS.glob("*.md"))]
# Where a reference to the design document may appear.
CITING = ["harness", "tests", "workloads", "docs"]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".sh", ".c", ".cfg", ".ini", ".html"}

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")
PATH_IN_SPAN = re.compile(r"(?<![\w/.$-])((?:docs|tests|harness|workloads)/[\w./*-]*|\.ci/run)")
# A path outside backticks counts when it names a file (an extension).
BARE_PATH = re.compile(r"(?<![\w/.`-])((?:docs|tests|harness|workloads)/[\w/.-]*\w"
                       r"\.(?:py|md|toml|c|sh))")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
DESIGN_REF = re.compile(r"([\w./-]*)DESIGN\.md")


def prose(page: Path) -> str:
    """The page without its fenced code blocks (shell examples, TOML, JSON)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(prose(page)):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def broken_links(page: Path) -> list[str]:
    bad = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{rel(page)}: link {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{rel(page)}: link {target}: no heading #{anchor} in {rel(dest)}")
    return bad


def named_paths(page: Path) -> set[str]:
    text = prose(page)
    found = {m.rstrip(".,;:") for span in SPAN.findall(text) for m in PATH_IN_SPAN.findall(span)}
    found |= set(BARE_PATH.findall(SPAN.sub("", text)))
    return found


def exists(path: str) -> bool:
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_of_a_page_resolves_to_a_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_repository_path_a_page_names_exists(page: Path) -> None:
    missing = sorted(p for p in named_paths(page) if not exists(p))
    assert missing == [], f"{rel(page)} names paths that do not exist"


def test_the_checks_see_the_links_and_paths_they_are_meant_to() -> None:
    # guards against a regex that silently matches nothing
    readme = ROOT / "README.md"
    assert {"docs/DESIGN.md", "docs/flags.md"} <= named_paths(readme) | {
        t for t in LINK.findall(prose(readme))}
    assert "tests/bench/peers.py" in named_paths(DOCS / "PERFORMANCE.md")
    assert "measurement-semantics-the-contract" in anchors(DESIGN)
    assert slug("Flags (`harness run`)") == "flags-harness-run"
    assert slug("100,000 connections from one box") == "100000-connections-from-one-box"


def test_a_missing_file_heading_or_path_is_reported(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# There\n\n## A heading\n")
    page = tmp_path / "page.md"
    page.write_text("[a](there.md#a-heading) [b](missing.md) [c](there.md#nope) "
                    "[d](https://example.com/x.md)\n`tests/no_such_file.py`, `tests/test_docs.py`"
                    " and harness/nowhere.py\n```sh\ncat tests/in_a_fence.py\n```\n")
    assert [b.split(": ", 1)[1] for b in broken_links(page)] == [
        "link missing.md: no such file", "link there.md#nope: no heading #nope in "
        + rel(tmp_path / "there.md")]
    assert sorted(p for p in named_paths(page) if not exists(p)) == [
        "harness/nowhere.py", "tests/no_such_file.py"]
    assert exists("workloads/plans/*.toml") and not exists("workloads/plans/*.nope")


def test_the_readme_is_read_in_one_sitting() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES


def test_the_design_and_performance_pages_exist_and_hold_their_contracts() -> None:
    design = DESIGN.read_text(encoding="utf-8")
    for heading in ("One-way data flow", "Measurement semantics", "Results", "Exit codes"):
        assert f"## {heading}" in design
    for key in ("conns_lost", "reconnects", "schema_version"):
        assert key in design
    assert "4 inconclusive" in design
    perf = (DOCS / "PERFORMANCE.md").read_text(encoding="utf-8")
    assert re.search(r"20\d\d-\d\d-\d\d", perf), "benchmark figures carry their dates"
    assert "(hotpath.md)" in perf


def test_the_run_flag_table_lives_in_docs_flags() -> None:
    rows = re.findall(r"^\| `--[a-z-]+", (DOCS / "flags.md").read_text(encoding="utf-8"), re.M)
    assert len(rows) >= 30


def citing_files() -> list[Path]:
    found = []
    for d in CITING:
        for top, dirs, names in os.walk(ROOT / d):
            dirs[:] = [n for n in dirs if n not in ("__pycache__", "node_modules")]  # not ours
            found += [Path(top, n) for n in names if Path(n).suffix in TEXT_SUFFIXES]
    return sorted(found)


def stray_design_refs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    bad = []
    for m in DESIGN_REF.finditer(text):
        ref = m.group(0)
        linked = text[max(m.start() - 2, 0):m.start()] == "](" and \
            (path.parent / ref).resolve() == DESIGN
        if not (ref.endswith("docs/DESIGN.md") or linked):
            line = text.count("\n", 0, m.start()) + 1
            bad.append(f"{rel(path)}:{line}: {ref}")
    return bad


def test_the_code_and_docs_cite_the_design_as_docs_design() -> None:
    files = citing_files()
    assert ROOT / "tests" / "test_architecture.py" in files
    assert [b for f in files for b in stray_design_refs(f)] == []
