"""docs/DESIGN.md's one-way data flow, checked by parsing imports with ast: every module in a
layer, each layer importing only the layers it is allowed to (config -> plan ->
coordinator -> worker -> results -> aggregate -> report), and no import cycle. Only the
CLI prints or exits."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "harness"

# The layers of docs/DESIGN.md's one-way flow, and which layers each may import (its own
# included). Every module of harness/ is in exactly one layer: a new module must be given
# its place here (the test names it), so an arrow that points the wrong way fails.
# The worker layer holds the wire: a module inside a ``harness/worker/`` package, and the
# names listed (transport, protocol, pacing, recording, ...), belong to it.
LAYERS: dict[str, set[str]] = {
    # values and small helpers every layer may use
    "base": {"__init__", "plan", "framing", "stamp", "histogram", "limits", "interrupts",
             "timer", "report.safe", "units", "pools",
             "protocols.ws.wsframe", "accel",
             # the protocol registry and each protocol's declaration (no sockets)
             "protocols", "protocols.spec", "protocols.kvguess", "protocols.tcp",
             "protocols.http", "protocols.redis", "protocols.memcached", "protocols.ws"},
    # the wire: sockets, bytes, pacing, recording, a worker's result; workloads (plug-ins)
    "worker": {"worker", "transport", "protocol", "pacing", "recording", "batch", "ledger",
               "result", "workloads", "delivery", "users", "poller",
               # each protocol's sans-I/O protocol object, transport and hooks; TLS
               "protocols.http.http1", "protocols.tls", "protocols.ws.ws",
               "protocols.ws.wstext", "protocols.ws.wstemplate", "protocols.ws.wsdeflate",
               "protocols.replies",
               "protocols.redis.resp", "protocols.memcached.memcache",
               "protocols.wire", "protocols.kvwire", "protocols.tcp.wire",
               "protocols.http.wire", "protocols.redis.wire", "protocols.memcached.wire",
               "protocols.ws.wire"},
    # the built-in target servers (separate processes)
    "servers": {"targets", "targets.__main__", "targets.chat", "targets.cluster",
                "targets.echo", "targets.loop", "targets.node", "targets.serve",
                "targets.wsecho", "targets.wschat"},
    # harness.toml + flags -> Plan (may use the wire's size and framing helpers)
    "config": {"config",
               "specs", "settings",
               "config_file",
               "payload",
               "reqtable",
               "usertable", "protocols.kvcmds", "protocols.ws.settings", "alert_spec"},
    # the client and the machine watched: psutil samples, kernel counters
    "watch": {"monitor", "netstat", "preflight",
              "machine"},
    # pure functions over results: percentiles, verdicts, trends, SLOs, merging runs
    "aggregate": {"aggregate", "summary", "trends", "capacity", "merge",
                  "fanout",
                  "storm", "ramp",
                  "diagnosis",
                  "compare",
                  "live", "live.feed"},
    # running steps: workers forked, a sweep, a run's target started and stopped
    "run": {"coordinator", "sweep", "targets.lifecycle",
            "agent", "scaleout",
            "probes"},
    # what is written and shown; never recomputes a statistic
    "report": {"report", "report.document", "report.html", "report.results", "report.table",
               "report.lines", "report.breakdown",
               "report.charts", "live.svg",
               "hlog", "openmetrics", "history",
               "report.compare_table", "report.compare_html", "junit", "report.schema"},
    # the commands: the only modules that print or exit
    "cli": {"cli", "__main__", "calibrate", "build",
            "cli_help",
            "outputs",
            "live.server", "live.session",
            "exports", "pushgateway",
            "alerts", "comparison"},
}
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "worker": {"base"},
    "servers": {"base"},
    "config": {"base", "worker"},
    "watch": {"base"},
    "aggregate": {"base", "worker"},
    "run": {"base", "worker", "servers", "watch", "aggregate"},
    "report": {"base", "aggregate"},
    "cli": set(LAYERS),
}
NO_SOCKETS = {"config", "aggregate", "report"}  # never import socket or selectors


@functools.cache
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


def layer_of(module: str) -> str | None:
    """A module's layer: listed by name, or inside a ``worker`` package."""
    for layer, names in LAYERS.items():
        if module in names:
            return layer
    return "worker" if module.startswith("worker.") else None


def targets_of(tree: ast.Module, known: set[str]) -> set[str]:
    """The harness modules (dotted, without "harness.") and "workloads" a module imports,
    anywhere in it (function-level imports count)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(_module(a.name, known) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.update(_module(f"{node.module}.{a.name}", known) for a in node.names)
    out.discard("")
    return out


def _module(name: str, known: set[str]) -> str:
    parts = name.split(".")
    if parts[0] == "workloads":
        return "workloads"
    if parts[0] != "harness":
        return ""
    for end in range(len(parts), 1, -1):  # the longest prefix that is a harness module
        dotted = ".".join(parts[1:end])
        if dotted in known:
            return dotted
    return "__init__"


def packaged() -> dict[str, ast.Module]:
    """modules(), a package named by its folder ("report", not "report.__init__")."""
    return {name.removesuffix(".__init__"): tree for name, tree in modules().items()}


def import_graph() -> dict[str, set[str]]:
    trees = packaged()
    return {name: targets_of(tree, set(trees)) - {name} for name, tree in trees.items()}


def test_every_module_has_a_layer() -> None:
    missing = [m for m in packaged() if layer_of(m) is None]
    assert not missing, f"give these a layer in tests/test_architecture.py LAYERS: {missing}"


def test_data_flows_one_way() -> None:
    bad = []
    for name, imports in import_graph().items():
        layer = layer_of(name)
        if layer is None:
            continue
        allowed = MAY_IMPORT[layer] | {layer}
        for target in sorted(imports):
            target_layer = layer_of(target)
            if target_layer not in allowed:
                bad.append(f"{name} ({layer}) imports {target} ({target_layer})")
        if layer in NO_SOCKETS and imported(packaged()[name]) & {"socket", "selectors"}:
            bad.append(f"{name} ({layer}) imports socket or selectors")
    assert not bad, bad


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


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_layer_rules_catch_a_wrong_arrow_and_a_cycle() -> None:
    wrong = ast.parse("from harness import config\nfrom harness.report import table\n")
    assert targets_of(wrong, {"config", "report", "report.table"}) == {"config",
                                                                     "report.table"}
    assert "config" not in MAY_IMPORT["worker"] and layer_of("worker.transport") == "worker"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_only_the_cli_prints_or_exits() -> None:
    allowed = {"cli", "__main__", "targets.__main__", "build"}  # build: python -m harness.build
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
