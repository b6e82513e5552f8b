"""The command line's flags and help: the option groups of ``run --help`` and
``search --help`` (each run flag shown with its default as resolved from the built-in
defaults and ./harness.toml), and the exit codes each command documents. Nothing here
prints or exits: :mod:`harness.cli` applies these to its commands."""

from __future__ import annotations

from typing import Any

import click

from harness.config.table import SETTINGS
from harness.core.safe import printable
from harness.core.settings import FRAMINGS, GROUPS, Setting, shown

EXIT_CODES_HELP = """Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO
failed, or the run was cut short (results written, marked partial); 2 usage or configuration
error; 3 the target could not be reached at all (refused, unresolvable, or never answered); 4
inconclusive: every threshold held but no step could be judged (client-bound, or other
processes on a shared core). Every non-zero exit prints its one-line reason on stderr."""
SEARCH_EXIT_HELP = """Exit codes: 0 a load met the SLO; 1 no probed load met it, or the search
was cut short; 2 usage or configuration error; 3 the target could not be reached at all; 4
inconclusive: a probe stayed on a busy (shared) core through its tries, or only loads the
client could not drive were left (no capacity is claimed)."""
MERGE_EXIT_HELP = """Exit codes: 0 merged and every threshold held; 1 merged and a threshold
failed; 2 usage error, or runs that cannot be merged."""
REPORT_EXIT_HELP = "Exit codes: 0 report written; 2 not a harness run folder."
EXPORT_EXIT_HELP = "Exit codes: 0 written; 2 not a harness run folder, or it cannot be written."
HISTORY_EXIT_HELP = """Exit codes: 0 listed (unreadable run folders are skipped with a warning); 2
the results folder cannot be listed, or --html cannot be written."""
COMPARE_EXIT_HELP = """Exit codes: 0 no regression beyond the limits; 1 a regression beyond them;
2 usage error, a missing or corrupt run folder, or runs that differ in workload, framing, size,
pacing or step loads (--force compares the steps that match); 4 inconclusive: no matched step
could be judged (client-bound, busy machine or cut short)."""
CALIBRATE_EXIT_HELP = """Exit codes: 0 measured; 1 interrupted; 4 the machine was busy (others
took a material share of a core: no ceiling reported)."""
CLUSTER_EXIT_HELP = """Exit codes: 0 stopped by Ctrl-C or SIGTERM; 2 usage error, no
harness[cluster] installed, or the address cannot be used."""
PLANS_EXIT_HELP = "Exit codes: 0 listed (or printed); 2 no shipped plan of that name."
SERVE_EXIT_HELP = """Exit codes: 0 stopped by Ctrl-C or SIGTERM; 2 usage error, or the address
cannot be listened on."""


class GroupedOption(click.Option):
    """An option that knows its help group and, for run flags, its harness.toml key."""

    def __init__(self, *args: Any, group: str = "Other", key: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group
        self.key = key


class GroupedCommand(click.Command):
    """``--help`` lists options under headings (GROUPS), each run flag with its default as
    resolved from the built-in defaults and ./harness.toml."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        defaults = resolved_defaults()
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            key = getattr(param, "key", None)
            if key is not None and key in defaults:
                record = (record[0], f"{record[1]}  [default: {defaults[key]}]")
            groups.setdefault(getattr(param, "group", "Other"), []).append(record)
        for title in GROUPS:
            if title in groups:
                with formatter.section(f"{title} options"):
                    formatter.write_dl(groups[title])


def resolved_defaults() -> dict[str, str]:
    """Each [run] key's default as text: the built-ins, with ./harness.toml over them (the
    built-ins alone when that file has an error: running will name it)."""
    from harness.config import build as cfg
    try:
        run = cfg.settings(cfg.load_file(None), {})["run"]
    except cfg.ConfigError:
        run = cfg.settings({}, {})["run"]
    return {key: printable(shown(value)) for key, value in run.items()}


def option(*decls: str, group: str, key: str | None = None, **kwargs: Any) -> Any:
    return click.option(*decls, cls=GroupedOption, group=group, key=key, **kwargs)


def _listed(ctx: click.Context, param: click.Parameter, value: tuple) -> list | None:
    """A repeated flag's values as a list (None when not given: the config file's stand)."""
    return list(value) if value else None


def _click_type(s: Setting) -> Any:
    if s.choices:
        return click.Choice(s.choices)
    if s.path:
        return click.Path()
    kind = s.spec.kind if s.spec is not None else "str"
    return {"int": int, "float": float}.get(kind, str)


def setting_option(s: Setting) -> Any:
    """The click option of one setting (harness.core.settings): a value not given is None, so the
    config files' stand; a flag-only switch is False."""
    extra: dict[str, Any] = {"metavar": s.metavar} if s.metavar else {}
    if s.repeatable:
        extra.update(multiple=True, callback=_listed)
    if s.optional_value is not None:
        extra.update(is_flag=False, flag_value=s.optional_value)
    if s.switch:
        return option(s.flag, s.name, is_flag=True, group=s.group, help=s.help)
    if s.spec is not None and s.spec.kind == "bool":
        decls = (f"{s.flag}/--no-{s.flag[2:]}",) if s.negatable else (s.flag,)
        return option(*decls, s.name, default=None, group=s.group, key=s.key, help=s.help,
                      **({} if s.negatable else {"is_flag": True}))
    return option(s.flag, s.name, type=_click_type(s), default=None, group=s.group,
                  key=s.key, help=s.help, **extra)


def run_options(f: Any, search: bool = False) -> Any:
    """The flags of ``run`` (``search``: only those that apply to a search's probes)."""
    return _apply(f, [setting_option(s) for s in SETTINGS if s.search or not search])


def search_options(f: Any) -> Any:
    return run_options(f, search=True)


def search_epilog() -> str:
    from harness.analysis.slo import GRAMMAR
    return "\b\n" + GRAMMAR + "\n\n" + SEARCH_EXIT_HELP


def _apply(f: Any, decorators: list[Any]) -> Any:
    """``decorators`` applied as if stacked above ``f`` in this order."""
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def search_flags(f: Any) -> Any:
    """The flags of ``search``: the SLO and the bounds, then the run flags that apply."""
    return _apply(search_options(f), [
        option("--slo", "slo_text", required=True, group="Search",
               help="the SLO a probe must meet, e.g. 'p99<5ms' or 'p99<5ms and errors<0.1%' "
                    "(grammar below)"),
        option("--max-errors", default=None, group="Search",
               help="largest error rate, e.g. 0.1% (default: not checked)"),
        option("--over", type=click.Choice(["rate", "conns"]), default="rate",
               show_default=True, group="Search",
               help="search the total message rate (open loop) or the connection count"),
        option("--lo", type=float, default=None, group="Search",
               help="first load to probe (default: 100 msgs/s with --over rate, 1 connection "
                    "with --over conns); if it fails, the search halves it, down to lo/64"),
        option("--hi", type=float, default=None, group="Search",
               help="highest load to probe (default: 100,000 msgs/s with --over rate, 1,000 "
                    "connections with --over conns)"),
        option("--tolerance", type=click.FloatRange(0.001, 1.0), default=0.05, show_default=True,
               group="Search",
               help="stop when the bracket is narrower than this fraction of the load found"),
        option("--max-probes", type=click.IntRange(2, 100), default=12, show_default=True,
               group="Search", help="the most probes to run"),
        option("--json", "as_json", is_flag=True, group="Output",
               help="print the search result as JSON: max_load, unit, slo, probes, ..."),
    ])


def merge_flags(f: Any) -> Any:
    """The arguments and flags of ``merge``."""
    return _apply(f, [
        click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True)),
        click.option("--name", default="merged", show_default=True),
        click.option("--results-dir", default="results", show_default=True),
        click.option("--json", "as_json", is_flag=True),
        click.option("--no-report", is_flag=True),
    ])


def compare_flags(f: Any) -> Any:
    """The arguments and flags of ``compare``."""
    return _apply(f, [
        click.argument("base", type=click.Path()),
        click.argument("new", type=click.Path()),
        click.option("--max-regression", default=None,
                     help="limits, e.g. p99=10%,throughput=5%: only the figures named are "
                          "limited (default p50=10%,p90=15%,p99=25%,p999=50%,throughput=10%,"
                          "errors=0.1%,lost=0)"),
        click.option("--force", is_flag=True,
                     help="compare the steps that match even when the runs differ"),
        click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON"),
        click.option("--html", "html_path", default=None,
                     help="where to write the comparison page (default NEW/compare.html)"),
        click.option("--no-report", is_flag=True, help="skip the comparison page"),
        click.option("--junit", "junit_path", default=None,
                     help="write JUnit XML of the regression limits to FILE"),
    ])


def calibrate_flags(f: Any) -> Any:
    """The flags of ``calibrate``."""
    return _apply(f, [
        click.option("--duration", type=click.FloatRange(0.5, 600), default=5.0, show_default=True),
        click.option("--conns", type=click.IntRange(1, 10000), default=100, show_default=True),
        click.option("--inflight", type=click.IntRange(1, 10000), default=16, show_default=True),
        click.option("--json", "as_json", is_flag=True),
    ])


def serve_flags(f: Any) -> Any:
    """The arguments and flags of ``serve``."""
    return _apply(f, [
        click.argument("kind", type=click.Choice(["echo", "chat"])),
        click.option("--port", default="5000", show_default=True,
                     help="port to listen on (0 = any free port, printed when listening); "
                          "echo: a range FIRST-LAST (e.g. 7001-7050) serves each port in a "
                          "process of its own"),
        click.option("--bind", default="127.0.0.1", show_default=True,
                     help="address to listen on (0.0.0.0 or :: for every interface)"),
        click.option("--framing", type=click.Choice(FRAMINGS), default="len32", show_default=True,
                     help="message framing the server reads and writes"),
        click.option("--ws", is_flag=True, help="speak WebSocket (ws://host:port/, any path)"),
        click.option("--nodes", type=click.IntRange(1, 64), default=1, show_default=True,
                     help="chat: linked nodes on consecutive ports"),
        click.option("--max-frame", type=click.IntRange(16, 1 << 30), default=1 << 20,
                     show_default=True, help="largest frame accepted from a client, bytes"),
    ])


def scheduler_flags(f: Any) -> Any:
    """The flags of ``cluster scheduler``."""
    return _apply(f, [
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="the one address to listen on (keep it private: see docs/cluster.md)"),
        click.option("--port", type=click.IntRange(0, 65535), default=8786, show_default=True),
    ])


def agent_flags(f: Any) -> Any:
    """The arguments and flags of ``agent``."""
    return _apply(f, [
        click.argument("scheduler"),
        click.option("--name", default=None, help="this machine's name in results (default: "
                                                  "its host name)"),
        click.option("--host", default=None, help="the address to listen on for the "
                     "scheduler (default: this machine's address on the route to it)"),
    ])
