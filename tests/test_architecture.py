"""docs/DESIGN.md's one-way data flow, read from the folders and checked by parsing imports with
ast. A layer is a subpackage of harness/; LAYERS below (bottom first) is all this test
declares. A module may import its own layer and the layers below it, never one above; the
package's ``__init__`` (its version) is below every layer and the ``cli`` package (the
commands) and ``__main__`` above them all. No module import cycle; config and analysis never
reach a socket; only the CLI prints or exits."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "harness"

# The layers, bottom first: each a folder of harness/. A new module goes in the folder of
# its layer; a new folder must be placed here.
LAYERS = ["core", "wire", "protocols", "targets", "worker", "analysis", "config", "run",
          "report"]
BOTTOM = {"__init__", "accel"}  # harness/__init__.py and the build it picks (stdlib only)
TOP = {"cli", "__main__", "build"}  # the commands
TOP_FOLDER = "cli"  # harness/cli/: a command per module, above every layer
NO_SOCKETS = {"config", "analysis"}  # reach no socket or selectors, through any import
SOCKETS = {"socket", "selectors"}


@functools.cache
def trees() -> dict[str, ast.Module]:
    """Every module of harness/, dotted without "harness." (a package by its folder name:
    "report", not "report.__init__")."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        name = str(p.relative_to(PKG).with_suffix("")).replace("/", ".")
        out[name.removesuffix(".__init__") if name != "__init__" else name] = \
            ast.parse(p.read_text())
    return out


def layer_index(module: str) -> int | None:
    """A module's rank: -1 the package's __init__, len(LAYERS) the CLI, else its folder's
    place in LAYERS; None for a module outside any layer."""
    if module in BOTTOM:
        return -1
    if module in TOP or module.split(".")[0] == TOP_FOLDER:
        return len(LAYERS)
    folder = module.split(".")[0]  # a loose top-level module has no folder
    if folder not in LAYERS or (module == folder and not (PKG / folder).is_dir()):
        return None
    return LAYERS.index(folder)


def type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(n.lineno for n in ast.walk(sub) if hasattr(n, "lineno"))
    return lines


def targets_of(tree: ast.Module, known: set[str], runtime: bool = False) -> set[str]:
    """The harness modules a module imports (dotted, without "harness."), anywhere in it;
    ``runtime``: leave out imports under TYPE_CHECKING."""
    skip = type_checking_only(tree) if runtime else set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(_module(a.name, known) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.update(_module(f"{node.module}.{a.name}", known) for a in node.names)
    out.discard("")
    return out


def _module(name: str, known: set[str]) -> str:
    parts = name.split(".")
    if parts[0] != "harness":
        return ""
    for end in range(len(parts), 1, -1):  # the longest prefix that is a harness module
        dotted = ".".join(parts[1:end])
        if dotted in known:
            return dotted
    return "__init__"  # "from harness import X" of a name, not a module: the package


def stdlib_imports(tree: ast.Module) -> set[str]:
    """The top-level names of the non-harness modules a module imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - {"harness"}


def import_graph(runtime: bool = False) -> dict[str, set[str]]:
    known = set(trees())
    return {name: targets_of(tree, known, runtime) - {name} for name, tree in trees().items()}


def with_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` plus what Python runs on an import: importing ``a.b`` runs ``a``'s
    __init__ first."""
    out = {name: set(targets) for name, targets in graph.items()}
    for name, targets in graph.items():
        for target in set(targets) | {name}:
            parts = target.split(".")
            out[name].update(".".join(parts[:k]) for k in range(1, len(parts))
                             if ".".join(parts[:k]) in graph)
        out[name].discard(name)
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        w = todo.pop()
        if w not in seen:
            seen.add(w)
            todo.extend(graph.get(w, ()))
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of more than one module that import each other (in a circle), sorted."""
    reach = {v: reachable(graph, v) for v in graph}
    groups = {tuple(sorted({v} | {w for w in reach[v] if v in reach.get(w, set())}))
              for v in graph if v in reach[v]}
    return sorted(list(g) for g in groups if len(g) > 1)


def wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Each import that points up (or out of the layers), as a sentence."""
    bad = []
    for name, imports in sorted(graph.items()):
        rank = layer_index(name)
        for target in sorted(imports):
            to = layer_index(target)
            if rank is not None and to is not None and to > rank:
                bad.append(f"{name} imports {target}, a layer above it")
    return bad


def test_the_layers_are_the_folders() -> None:
    folders = {p.parent.name for p in PKG.glob("*/__init__.py")} - {TOP_FOLDER}
    assert folders == set(LAYERS), "LAYERS in tests/test_architecture.py lists the folders"


def test_every_module_is_in_a_layer() -> None:
    loose = [f"harness/{m.replace('.', '/')}.py" for m in trees() if layer_index(m) is None]
    assert not loose, f"move these into a layer folder: {loose}"


def test_data_flows_one_way() -> None:
    assert wrong_arrows(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph(runtime=True)) == []


def test_config_and_analysis_reach_no_socket() -> None:
    graph = with_packages(import_graph(runtime=True))
    bad = []
    for name in trees():
        if name.split(".")[0] not in NO_SOCKETS:
            continue
        for m in sorted(reachable(graph, name) | {name}):
            if stdlib_imports(trees()[m]) & SOCKETS:
                bad.append(f"{name} reaches {m}, which imports socket or selectors")
    assert not bad, bad


def test_the_rules_catch_a_wrong_arrow_a_cycle_and_a_loose_module() -> None:
    wrong = ast.parse("from harness import cli\nfrom harness.report import table\n")
    assert targets_of(wrong, {"cli", "report", "report.table"}) == {"cli", "report.table"}
    assert wrong_arrows({"core.plan": {"wire.batch", "core.units"},
                         "cli": {"report.table"}}) == [
        "core.plan imports wire.batch, a layer above it"]
    assert layer_index("worker") == LAYERS.index("worker")  # the package itself
    assert layer_index("pacing") is None and layer_index("core.x.y") == 0
    assert layer_index("cli.running") == len(LAYERS)  # a command module, above all
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert with_packages({"a.b": {"c.d"}, "c.d": set(), "c": {"x"}, "a": set(),
                          "x": set()})["a.b"] == {"a", "c", "c.d"}
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from harness.run import sweep\n")
    assert targets_of(guarded, {"run.sweep"}) == {"run.sweep"}
    assert targets_of(guarded, {"run.sweep"}, runtime=True) == set()


def test_only_the_cli_prints_or_exits() -> None:
    allowed = {"cli", "__main__", "targets.__main__", "build"}  # build: python -m harness.build
    bad = []
    for name, tree in trees().items():
        if name in allowed or name.split(".")[0] == TOP_FOLDER:
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
        assert not stdlib_imports(ast.parse(p.read_text())) & (SOCKETS | {"asyncio"}), p
