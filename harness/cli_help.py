"""The command line's flags and help: the option groups of ``run --help`` and
``search --help`` (each run flag shown with its default as resolved from the built-in
defaults and ./harness.toml), and the exit codes each command documents. Nothing here
prints or exits: :mod:`harness.cli` applies these to its commands."""

from __future__ import annotations

from typing import Any

import click

from harness.report.safe import printable

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
# Option groups of `run --help`, in the order shown.
GROUPS = ("Search", "Target", "Load", "Pacing", "Step", "Measurement", "Output", "Capacity",
          "Config", "Other")
FRAMINGS = ("newline", "len16", "len32")
# (flag, type, group, help, applies to search). Each flag's default is its harness.toml key.
RUN_FLAGS: list[tuple[str, Any, str, str, bool]] = [
    ("--host", str, "Target", "target host:port, [v6]:port, http(s)://host:port/path, or a "
     "comma list of nodes; none = start the embedded server", True),
    ("--server-cmd", str, "Target", "a command that starts a local server: watched, stopped "
     "afterwards", True),
    ("--workload", str, "Target", "echo, chat, or path/to/workload.py", True),
    ("--framing", click.Choice(FRAMINGS), "Target", "message framing (len16/len32: big-endian "
     "length prefix)", True),
    ("--max-frame", int, "Target", "largest frame accepted from the server, bytes (16 to 2^30)",
     True),
    ("--source-addrs", str, "Target", "local IPv4 addresses to spread connections over, e.g. "
     "127.0.0.1-127.0.0.8 (automatic past 12,000 to loopback targets)", True),
    ("--ca", str, "Target", "TLS: verify the server's certificate against this CA file (PEM) "
     "instead of the system store", True),
    ("--ws-subprotocol", str, "Target", "ws://: the subprotocol asked for in the handshake",
     True),
    ("--header", str, "Target", "ws://: an extra handshake header, 'Name: value' (repeat "
     "for more; not Host, Upgrade or Sec-WebSocket-*)", True),
    ("--ws-text", str, "Target", "ws://: text messages from a JSON template with \"{stamp}\" "
     "(and {text}: filler to --size)", True),
    ("--ws-match", str, "Target", "ws://: field=value a text message must have to count; "
     "others are skipped", True),
    ("--ping-interval", float, "Pacing", "ws://: seconds between pings on every connection "
     "(0 = none; 0.01 to 3600)", True),
    ("--conns", str, "Load", "connection counts to sweep, e.g. 10,100,1000 (1 to 1,000,000)",
     True),
    ("--messages", str, "Load", "messages per step in total (a list sweeps); ends each step "
     "instead of --duration", False),
    ("--workers", int, "Load", "worker processes (0 = usable cores, less one for an embedded "
     "server)", True),
    ("--size", str, "Load", "bytes per message on the wire, framing included: N, LO-HI or "
     "N,N,...", True),
    ("--corpus", str, "Load", "payloads from a file, one per line, after the stamp", True),
    ("--requests", str, "Load", "HTTP: a TOML file whose [[requests]] table replaces "
     "harness.toml's", True),
    ("--accept", str, "Load", "HTTP: status codes that are not errors, e.g. 2xx,3xx,404 or "
     "200-299 (default 2xx)", True),
    ("--redis-cmd", str, "Load", "redis: ping, echo, set, get, or weighted: set:1,get:3", True),
    ("--mc-cmd", str, "Load", "memcached: set, get, or weighted: set:1,get:9", True),
    ("--keys", int, "Load", "redis/memcached: keys key:1 to key:N (1 to 10^9)", True),
    ("--listen", int, "Load", "listen-only connections per node (broadcast workloads)", True),
    ("--push-hosts", str, "Load", "node indices the sending connections go to, e.g. 0,1", True),
    ("--seed", int, "Load", "seed for schedules and payloads", True),
    ("--inflight", int, "Pacing", "closed loop: messages outstanding per connection", True),
    ("--rate", float, "Pacing", "open loop: messages/s per connection on a fixed schedule "
     "(0.001 to 1e6; 0 = closed loop)", True),
    ("--think", str, "Pacing", "closed loop: seconds a connection waits after each reply: 2, "
     "or 1-5 (uniform), 0 to 3600; needs --inflight 1", True),
    ("--connect-rate", float, "Pacing", "new connections per second (0 = as fast as possible)",
     True),
    ("--duration", float, "Step", "seconds of the measure window per step", True),
    ("--warmup", float, "Step", "seconds of warm-up before each measure window", True),
    ("--timeout", float, "Step", "reply timeout, seconds (0.001 to 3600)", True),
    ("--connect-timeout", float, "Step", "connect timeout, seconds (0.001 to 3600)", True),
    ("--server-pid", int, "Measurement", "a server process to watch (CPU, memory, threads, "
     "fds; 0 = none)", True),
    ("--monitor-interval", float, "Measurement", "seconds between resource samples (0.05 to "
     "60)", True),
    ("--shared-core-pct", float, "Measurement", "a step where other processes took this % of "
     "a worker's or the server's core is on a shared core, not judged (1 to 100)", True),
    ("--name", str, "Output", "run name, used in the results folder", False),
    ("--baseline", str, "Output", "a run folder to compare with when the run ends (exit 1 on "
     "a regression beyond --max-regression, 2 when the runs differ)", False),
    ("--results-dir", str, "Output", "where results/<UTC time>-<name>/ goes", False),
    ("--grow", click.Choice(("double", "add")), "Capacity", "--until-degraded: double the "
     "connections each step, or add --increment", False),
    ("--increment", int, "Capacity", "--until-degraded with --grow add: connections added per "
     "step", False),
    ("--max-conns", int, "Capacity", "--until-degraded: the most connections to try", False),
]


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
    from harness import config as cfg
    try:
        run = cfg.settings(cfg.load_file(None), {})["run"]
    except cfg.ConfigError:
        run = cfg.settings({}, {})["run"]
    shown = {}
    for key, value in run.items():
        if isinstance(value, list):
            value = ",".join(map(str, value)) or "none"
        elif isinstance(value, bool):
            value = "on" if value else "off"
        shown[key] = printable(str(value)) if value != "" else "none"
    return shown


def option(*decls: str, group: str, key: str | None = None, **kwargs: Any) -> Any:
    return click.option(*decls, cls=GroupedOption, group=group, key=key, **kwargs)


def _extra_options() -> dict[str, Any]:
    """The run options that are not harness.toml keys (or are flags), by name."""
    return {
        "--config": option("--config", "config_path", type=click.Path(), default=None,
                           group="Config", help="a config file (a plan) layered over "
                           "./harness.toml, which is layered over the built-in defaults; "
                           "flags override all three"),
        "--plan": option("--plan", "plan_name", default=None, metavar="NAME", group="Config",
                         help="a plan shipped with harness, by name (harness plans lists "
                              "them), in --config's place"),
        "--push-conns": option("--push-conns", type=str, default=None, group="Load",
                               help="alias of --conns for fan-out runs"),
        "--json": option("--json", "as_json", is_flag=True, group="Output",
                         help="print the run summary as JSON on stdout instead of the table"),
        "--no-report": option("--no-report", is_flag=True, group="Output",
                              help="skip the HTML report"),
        "--pushgateway": option("--pushgateway", default=None, metavar="URL", group="Output",
                                help="push the figures to a Prometheus Pushgateway after "
                                     "each step and at the end (a failure is a warning)"),
        "--env": option("--env", "env_name", default=None, group="Measurement",
                        help="apply [env.NAME] threshold/degradation overrides"),
        "--scenario": option("--scenario", default=None, group="Capacity",
                             help="a [scenarios.NAME] preset (built-in: smoke, baseline, load, "
                                  "stress, ramp, spike, soak, reconnect-storm) or one from "
                                  "harness.toml"),
        "--tls": option("--tls", is_flag=True, default=None, group="Target", key="tls",
                        help="wrap raw TCP (host:port) in TLS; https:// URLs always use TLS"),
        "--insecure": option("--insecure", is_flag=True, default=None, group="Target",
                             key="insecure", help="TLS: do not verify the server's certificate"),
        "--ws": option("--ws", is_flag=True, default=None, group="Target", key="ws",
                       help="with no --host: the embedded server speaks WebSocket (ws://)"),
        "--ws-compress": option("--ws-compress", is_flag=True, default=None, group="Target",
                                key="ws_compress", help="ws://: offer permessage-deflate"),
        "--reconnect": option("--reconnect", is_flag=True, default=None, group="Pacing",
                              key="reconnect", help="ws://: reopen, with backoff, a "
                              "connection the server closed or dropped (counted)"),
        "--max-regression": option("--max-regression", default=None, group="Output",
                                   help="with a baseline: limits, e.g. p99=10%,throughput=5% "
                                        "(default p50=10%,p90=15%,p99=25%,p999=50%,"
                                        "throughput=10%,errors=0.1%,lost=0)"),
        "--alert-on": option("--alert-on", "alert_on", type=click.Choice(["failure", "always"]),
                             default=None, group="Output",
                             help="send the [alerts] of harness.toml (or --config) on failure "
                                  "only, or after every run (overrides [alerts] on)"),
        "--junit": option("--junit", "junit_path", default=None, group="Output",
                          help="write JUnit XML of the thresholds (and regressions) to FILE"),
        "--cluster": option("--cluster", default=None, group="Target",
                            help="run on the harness agents of this Dask scheduler, e.g. "
                                 "tcp://COORD:8786: the plan split by their cores, each step "
                                 "started together (needs harness[cluster])"),
        # --live: harness.live (README "Live page")
        "--live": option("--live", "live", is_flag=False, flag_value="127.0.0.1:0",
                         default=None, metavar="[HOST:PORT]", group="Output",
                         help="serve a live page of the run (default 127.0.0.1, a free "
                              "port; its address is printed on stderr)"),
        "--live-linger": option("--live-linger", "live_linger",
                                type=click.FloatRange(0, 86400), default=None, metavar="S",
                                group="Output", help="keep the live page up S seconds after "
                                "the run (default 0)"),
        "--judge-shared-core": option("--judge-shared-core", is_flag=True, default=None,
                                      group="Measurement", key="judge_shared_core",
                                      help="judge steps on a shared core all the same (a "
                                           "shared CI runner), marked as judged on one"),
        "--until-degraded": option("--until-degraded/--no-until-degraded", default=None,
                                   group="Capacity", key="until_degraded",
                                   help="keep adding steps until the degradation rule fires "
                                        "(--no-until-degraded: only the steps listed, e.g. a "
                                        "plan's first step with --conns N)"),
    }


SEARCH_EXTRAS = ("--config", "--plan", "--push-conns", "--tls", "--insecure",
                 "--judge-shared-core")
REPEATED = frozenset({"--header"})  # given once per value: every one is kept, in order


def _listed(ctx: click.Context, param: click.Parameter, value: tuple) -> list | None:
    """A repeated flag's values as a list (None when not given: the config file's stand)."""
    return list(value) if value else None


def run_options(f: Any, search: bool = False) -> Any:
    """The flags of ``run`` (``search``: only those that apply to a search's probes)."""
    decorators = [d for name, d in _extra_options().items()
                  if not search or name in SEARCH_EXTRAS]
    decorators += [option(flag, type=typ, default=None, group=group,
                          key=flag[2:].replace("-", "_"), help=help_,
                          **({"multiple": True, "callback": _listed} if flag in REPEATED
                             else {}))
                   for flag, typ, group, help_, in_search in RUN_FLAGS
                   if in_search or not search]
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def search_options(f: Any) -> Any:
    return run_options(f, search=True)


def search_epilog() -> str:
    from harness.capacity import GRAMMAR
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
        click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
                     help="port to listen on (0 = any free port, printed when listening)"),
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
                     help="the one address to listen on (keep it private: see the README)"),
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
