"""The one table of run flags (harness.core.settings) and what comes from it: the docs' flag table
in step with it (every flag in both, the same default), the click options of run and search,
the [run] defaults, types and ranges, and the settings that apply to some runs only."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from harness import protocols
from harness.cli import run, search
from harness.config import table as specs
from harness.config.table import RUN_KEYS, SETTINGS
from harness.core import specs as core_specs
from harness.core.settings import (
    CORE,
    GROUPS,
    STR,
    Setting,
    Spec,
    range_text,
    table,
)

ROOT = Path(__file__).resolve().parents[1]
# The flag table lives in the first of these files that has one.
TABLE_FILES = ("docs/flags.md", "README.md")
HEADER = re.compile(r"^\|\s*flag\s*\|")


def flag_table() -> tuple[str, list[list[str]]]:
    """The docs' flag table: the file it is in, and its rows as cells (header first)."""
    for name in TABLE_FILES:
        path = ROOT / name
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        start = next((i for i, ln in enumerate(lines) if HEADER.match(ln)), None)
        if start is None:
            continue
        rows = []
        for line in lines[start:]:
            if not line.startswith("|"):
                break
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        return name, [rows[0]] + rows[2:]  # without the | --- | line
    raise AssertionError(f"no flag table (a '| flag |' header) in {TABLE_FILES}")


def flags_named(cell: str) -> set[str]:
    """The flags a first cell names: each `--flag ...` in backticks, its first word."""
    return {m.group(1) for m in re.finditer(r"`(--[a-z0-9-]+)", cell)}


def documented(column: str) -> tuple[str, dict[str, str]]:
    """Each flag of the docs' table and its cell in ``column`` (backticks off)."""
    name, rows = flag_table()
    header = [c.lower() for c in rows[0]]
    assert column in header, f"{name}: the flag table has no {column} column: {rows[0]}"
    col = header.index(column)
    out: dict[str, str] = {}
    for row in rows[1:]:
        flags = flags_named(row[0])
        assert len(flags) == 1, f"{name}: one flag per row, not {sorted(flags)}: {row[0]}"
        flag = flags.pop()
        assert flag not in out, f"{name}: {flag} has two rows"
        out[flag] = row[col].strip("`")
    return name, out


def test_the_docs_flag_table_has_every_flag_once_with_its_default() -> None:
    name, docs = documented("default")
    declared = {s.flag: s.shown_default for s in SETTINGS}
    assert sorted(set(declared) - set(docs)) == [], f"flags missing from {name}'s table"
    assert sorted(set(docs) - set(declared)) == [], f"{name}'s table has flags harness lacks"
    wrong = {f: (docs[f], d) for f, d in declared.items() if docs[f] != d}
    assert wrong == {}, f"{name}: (table, harness) defaults differ"


def test_the_docs_flag_table_gives_each_number_its_checked_range() -> None:
    name, docs = documented("range")
    wrong = {s.flag: (docs.get(s.flag), range_text(s.spec)) for s in SETTINGS
             if docs.get(s.flag) != range_text(s.spec)}
    assert wrong == {}, f"{name}: (table, harness) ranges differ"
    assert range_text(Spec("float", 0, 1e6, zero_or=0.001)) == "0 or 0.001 to 1,000,000"
    assert range_text(Spec("int", 0, 2**63 - 1)) == "0 to 2^63-1" and range_text(STR) == ""


def test_the_docs_check_catches_a_missing_flag_and_a_wrong_default() -> None:
    assert flags_named("`--size B`, `--size 64-1024`") == {"--size"}
    assert flags_named("`--grow double\\|add`") == {"--grow"}
    assert flags_named("a `[scenarios.NAME]` preset") == set()
    conns = next(s for s in SETTINGS if s.flag == "--conns")
    assert conns.shown_default == "10,100,1000" != "10,100"


def test_every_setting_is_an_option_of_run_and_the_search_ones_of_search() -> None:
    ctx = click.Context(run)
    options = {o: p for p in run.get_params(ctx) for o in p.opts}
    assert {s.flag for s in SETTINGS} <= set(options)
    in_search = {o for p in search.get_params(click.Context(search)) for o in p.opts}
    assert {s.flag for s in SETTINGS if s.search} <= in_search
    assert "--messages" not in in_search and "--baseline" not in in_search
    assert options["--header"].multiple and options["--until-degraded"].secondary_opts == [
        "--no-until-degraded"]
    assert all(getattr(options[s.flag], "key", None) == s.key for s in SETTINGS)
    assert {s.group for s in SETTINGS} <= set(GROUPS)


def test_the_run_defaults_types_and_ranges_come_from_the_table() -> None:
    assert list(specs.RUN_DEFAULTS) == [s.key for s in RUN_KEYS]
    assert specs.RUN_DEFAULTS["conns"] == [10, 100, 1000]  # a TOML list, not a tuple
    assert specs.RUN_SPEC["rate"] == Spec("float", 0, 1e6, zero_or=0.001)
    assert specs.FLAG["connect_timeout"] == "--connect-timeout"
    assert specs.APPLIES["keys"][0] == frozenset({"redis", "memcached"})
    assert "run" not in specs.tomllib.loads(
        (ROOT / "harness" / "config" / "default.toml").read_text(encoding="utf-8"))
    for s in RUN_KEYS:  # every built-in default passes its own type and range check
        assert s.spec is not None
        core_specs.check_type(s.toml_default, s.spec, s.flag)
        if s.spec.kind in ("int", "float"):
            specs.number({s.key: s.default}, str(s.key))


def test_protocol_settings_are_tagged_and_a_flag_declared_twice_is_refused() -> None:
    owners = {n for n, own in protocols.settings().items() if own}
    assert {s.protocol for s in SETTINGS} == {""} | owners
    assert next(s for s in SETTINGS if s.flag == "--ws-text").protocol == "ws"
    assert [s.flag for s in SETTINGS].count("--keys") == 1  # redis's and memcached's, once
    assert next(s for s in SETTINGS if s.flag == "--keys").protocol == "redis"
    extra = {"mqtt": (Setting("--mqtt-topic", "Target", "a topic", Spec("str"), "t"),)}
    assert table(CORE, extra)[-1].protocol == "mqtt"
    with pytest.raises(ValueError, match="declared twice: --host"):
        table(CORE, {"x": (Setting("--host", "Target", "again"),)})
    with pytest.raises(ValueError, match="declared twice: --qos"):  # two protocols' own
        table(CORE, {"a": (Setting("--qos", "Load", "a's", STR, "0"),),
                     "b": (Setting("--qos", "Load", "b's", STR, "1"),)})


def _number(text: str) -> float:
    text = text.replace(",", "")
    base, _, power = text.partition("^")
    return float(base) ** float(power) if power else float(text)


def test_a_range_a_help_line_states_is_the_range_checked() -> None:
    stated = 0
    for s in SETTINGS:
        for m in re.finditer(r"(\d[\d.,^e]*) to (\d[\d.,^e]*)", s.help):
            assert s.spec is not None, s.flag
            lo = s.spec.zero_or if s.spec.zero_or is not None else s.spec.lo
            assert (_number(m.group(1)), _number(m.group(2))) == (lo, s.spec.hi), s.flag
            stated += 1
    assert stated >= 10
