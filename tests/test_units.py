"""One ``SEC`` for the whole package: harness/core/units.py defines it, every module imports it."""

from __future__ import annotations

import ast
from pathlib import Path

from harness.core.units import SEC

PKG = Path(__file__).resolve().parents[1] / "harness"


def test_sec_is_the_ns_in_one_second() -> None:
    assert SEC == 1_000_000_000 and isinstance(SEC, int)


def test_only_units_defines_sec_and_no_module_spells_out_a_billion() -> None:
    bad = []
    for path in PKG.rglob("*.py"):
        if path.name == "units.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "SEC" for t in node.targets):
                bad.append(f"{path.name}:{node.lineno} defines SEC")
            if isinstance(node, ast.Constant) and node.value == 1_000_000_000 and \
                    isinstance(node.value, int):
                bad.append(f"{path.name}:{node.lineno} spells out 10**9")
    assert not bad, bad
