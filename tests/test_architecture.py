"""DESIGN.md's one-way data flow, checked by parsing imports with ast: config -> plan ->
coordinator -> worker -> results -> aggregate -> report. Only the CLI prints or exits."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "harness"

# module -> harness modules it must never import
FORBIDDEN = {
    "worker": {"config", "cli", "aggregate", "report", "coordinator", "sweep", "monitor"},
    "transport": {"config", "cli", "aggregate", "report", "coordinator", "sweep", "monitor",
                  "worker", "pacing", "recording", "delivery"},
    "protocol": {"config", "cli", "aggregate", "report", "coordinator", "worker", "transport",
                 "pacing", "recording", "socket", "selectors"},
    "delivery": {"config", "cli", "aggregate", "report", "coordinator", "worker", "transport",
                 "pacing", "recording", "protocol", "socket", "selectors"},
    "pacing": {"config", "cli", "aggregate", "report", "coordinator", "worker", "transport",
               "protocol", "delivery", "recording", "socket", "selectors", "time"},
    "recording": {"config", "cli", "aggregate", "report", "coordinator", "worker", "transport",
                  "protocol", "delivery", "pacing", "socket", "selectors"},
    "units": {"config", "cli", "aggregate", "report", "coordinator", "worker", "plan"},
    "batch": {"config", "cli", "aggregate", "report", "coordinator", "worker"},
    "ledger": {"config", "cli", "aggregate", "report", "coordinator", "worker", "socket",
               "selectors"},
    "histogram": {"config", "cli", "aggregate", "report", "coordinator", "worker"},
    "aggregate": {"config", "cli", "report", "coordinator", "worker", "sweep", "socket",
                  "selectors"},
    "capacity": {"config", "cli", "report", "coordinator", "worker", "socket", "selectors"},
    "merge": {"config", "cli", "report", "coordinator", "worker", "socket", "selectors"},
    "coordinator": {"config", "cli", "aggregate", "report"},
    "config": {"cli", "coordinator", "worker", "aggregate", "report", "sweep"},
    "plan": {"config", "cli", "coordinator", "worker", "aggregate", "report"},
    "report": {"cli", "coordinator", "worker", "sweep", "config", "socket", "selectors"},
}


def modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PKG).with_suffix("")).replace("/", "."): ast.parse(p.read_text())
            for p in PKG.rglob("*.py")}


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    out = set()
    for n in names:
        parts = n.split(".")
        out.add(parts[1] if parts[0] == "harness" and len(parts) > 1 else parts[0])
    return out


def test_data_flows_one_way() -> None:
    bad = []
    for name, tree in modules().items():
        top = name.split(".")[0]
        for rule, forbidden in FORBIDDEN.items():
            if top == rule:
                hits = imported(tree) & forbidden
                if hits:
                    bad.append(f"harness/{name}.py imports {sorted(hits)}")
    assert not bad, bad


def test_only_the_cli_prints_or_exits() -> None:
    allowed = {"cli", "__main__", "targets.__main__"}
    bad = []
    for name, tree in modules().items():
        if name in allowed:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            called = (f.id if isinstance(f, ast.Name) else
                      f"{getattr(f.value, 'id', '?')}.{f.attr}" if isinstance(f, ast.Attribute)
                      else "")
            if called in ("print", "sys.exit", "exit", "click.echo", "os._exit"):
                bad.append(f"harness/{name}.py:{node.lineno} calls {called}")
    assert not bad, bad


def test_workloads_never_touch_sockets() -> None:
    for p in (ROOT / "workloads").glob("*.py"):
        assert not imported(ast.parse(p.read_text())) & {"socket", "selectors", "asyncio"}, p
