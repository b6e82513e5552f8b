"""The command line: run, search, serve, report, calibrate. The only module that prints or
exits.

Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO failed (or the run
was cut short); 2 usage or configuration error (one line naming the bad flag or key); 3 the
target could not be reached at all.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import click
import numpy as np
import orjson

from harness import __version__, aggregate
from harness import config as cfg
from harness import sweep as sweep_mod
from harness.coordinator import RunOutcome, Unreachable, probe, raise_nofile, resolve
from harness.plan import Plan, Target
from harness.report import results as results_mod
from harness.report import table
from harness.sweep import Session

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EMBEDDED_CHAT_NODES = 3  # --workload chat without --host runs against a linked 3-node cluster
EXIT_CODES_HELP = """Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO
failed, or the run was cut short (results written, marked partial); 2 usage or configuration
error; 3 the target could not be reached at all."""


def die(code: int, message: str) -> None:
    click.echo(f"harness: {message}", err=True)
    sys.exit(code)


@click.group(epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="harness")
def main() -> None:
    """harness: a multiprocess raw-socket stress harness.

    Latency percentiles, throughput, errors, lost messages, and the load at which a TCP
    server degrades.
    """


# ---------------------------------------------------------------------------- run

RUN_FLAGS = [
    ("--host", str, "target host:port, [v6]:port, or a comma list of nodes; none = embedded"),
    ("--conns", str, "connection counts to sweep, e.g. 10,100,1000"),
    ("--messages", str, "messages per step in total (a list sweeps), instead of --duration"),
    ("--workers", int, "worker processes (default: usable cores, less one for an embedded server)"),
    ("--workload", str, "echo, chat, or path/to/workload.py"),
    ("--framing", str, "newline, len16 or len32"),
    ("--size", str, "bytes per message on the wire, framing included: N, LO-HI or N,N,..."),
    ("--corpus", str, "payloads from a file, one per line, after the stamp"),
    ("--inflight", int, "closed loop: messages outstanding per connection"),
    ("--rate", float, "open loop: messages/s per connection, on a fixed schedule"),
    ("--think", float, "closed loop: seconds to wait after each reply"),
    ("--duration", float, "seconds of the measure window per step"),
    ("--warmup", float, "seconds of warm-up before each measure window"),
    ("--timeout", float, "reply timeout, seconds"),
    ("--connect-timeout", float, "connect timeout, seconds"),
    ("--connect-rate", float, "new connections per second (0 = as fast as possible)"),
    ("--max-frame", int, "largest frame accepted from the server, bytes"),
    ("--listen", int, "listen-only connections per node (broadcast workloads)"),
    ("--push-hosts", str, "node indices the sending connections go to, e.g. 0,1"),
    ("--grow", str, "--until-degraded: double, or add (--increment connections)"),
    ("--increment", int, "--until-degraded with --grow add: connections added per step"),
    ("--max-conns", int, "--until-degraded: the most connections to try"),
    ("--server-pid", int, "a server process to watch (CPU, memory, threads, fds)"),
    ("--server-cmd", str, "a command that starts a local server: watched, stopped afterwards"),
    ("--monitor-interval", float, "seconds between resource samples"),
    ("--source-addrs", str, "local IPv4 addresses to spread connections over, e.g. "
                            "127.0.0.1-127.0.0.8 (automatic past 25,000 to one loopback target)"),
    ("--seed", int, "seed for schedules and payloads"),
    ("--name", str, "run name, used in the results folder"),
    ("--results-dir", str, "where results/<UTC time>-<name>/ goes"),
]


def run_options(f: Any) -> Any:
    for flag, typ, help_ in reversed(RUN_FLAGS):
        f = click.option(flag, type=typ, default=None, help=help_)(f)
    f = click.option("--push-conns", type=str, default=None,
                     help="alias of --conns for fan-out runs")(f)
    f = click.option("--config", "config_path", type=click.Path(), default=None,
                     help="config file (default ./harness.toml)")(f)
    f = click.option("--json", "as_json", is_flag=True, help="print the run summary as JSON")(f)
    f = click.option("--no-report", is_flag=True, help="skip the HTML report")(f)
    f = click.option("--until-degraded", is_flag=True, default=None,
                     help="keep adding steps until the degradation rule fires")(f)
    f = click.option("--scenario", default=None, help="a [scenarios.NAME] from harness.toml")(f)
    f = click.option("--env", "env_name", default=None,
                     help="apply [env.NAME] threshold/degradation overrides")(f)
    return f


@main.command(epilog=EXIT_CODES_HELP)
@run_options
def run(config_path: str | None, as_json: bool, no_report: bool, push_conns: str | None,
        scenario: str | None, env_name: str | None, **flags: Any) -> None:
    """Sweep connection counts (or message counts) against a server and report."""
    plan, workload = plan_from_flags(config_path, push_conns, scenario, env_name, flags)
    sys.exit(execute(plan, workload, as_json, not no_report))


def plan_from_flags(config_path: str | None, push_conns: str | None, scenario: str | None,
                    env_name: str | None, flags: dict[str, Any]) -> tuple[Plan, Any]:
    if push_conns is not None:
        if flags["conns"] is not None:
            die(EXIT_USAGE, "--push-conns is an alias of --conns: give one of them")
        flags["conns"] = push_conns
    try:
        file = cfg.load_file(config_path)
        merged = cfg.settings(file, flags, scenario, env_name)
        both = flags["rate"] is not None and flags["inflight"] is not None
        plan = cfg.build_plan(merged, rate_and_inflight=both)
        workload = load_workload(plan)
        check_listen(plan, workload)
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))
    return plan, workload


def check_listen(plan: Plan, workload: Any) -> None:
    """Listen-only connections only make sense where messages are broadcast to them."""
    if workload.delivery != "broadcast" and any(s.listen for s in plan.steps):
        raise cfg.ConfigError(f"--listen: listen-only connections need a broadcast workload "
                              f"(e.g. chat); {workload.name} replies only to the sender")


def load_workload(plan: Plan) -> Any:
    from workloads import WorkloadError, load
    try:
        cls = load(plan.workload)
        return cls(plan.size_spec if plan.size_spec is not None else plan.size, plan.seed)
    except WorkloadError as exc:
        raise cfg.ConfigError(str(exc)) from None
    except Exception as exc:  # a user's workload whose constructor fails
        raise cfg.ConfigError(f"workload {plan.workload}: {type(exc).__name__}: {exc}") from None


def execute(plan: Plan, workload: Any, as_json: bool, html: bool = True) -> int:
    """Run the plan end to end; returns the exit code. Results are written even if cut short.

    Ctrl-C or SIGTERM at any point stops what was started (server, workers); before the
    first step that is all (exit 1), later the steps measured so far are reported."""
    outcome: RunOutcome | None = None
    watched: list = []
    warnings: list[str] = []
    started = time.time()
    try:
        with sigterm_interrupts(), Targets(plan, workload) as targets:
            plan = targets.plan
            started = time.time()
            with Session(plan, workload, targets.addrs, targets.watch, live_line(),
                         targets.reserve) as session:
                outcome = interruptible(session.sweep)
                watched = [session.watched(r) for r in outcome.steps]
                warnings = session.warnings
    except KeyboardInterrupt:
        if outcome is None:
            die(EXIT_FAIL, "interrupted before the first step")
        outcome.partial = outcome.interrupted = True  # cut while stopping: keep what we have
    for w in warnings:
        click.echo(f"harness: warning: {w}", err=True)
    return report(plan, workload, outcome, started, as_json, html, watched, warnings)


class Targets:
    """Everything about the target for one run: the embedded server or --server-cmd started
    (and stopped afterwards), names resolved (exit 2), reachability probed (exit 3), and the
    server processes to watch."""

    def __init__(self, plan: Plan, workload: Any) -> None:
        self.plan = plan
        self.workload = workload
        self.server: Any = None
        self.proc: subprocess.Popen | None = None
        self.watch: dict[str, int] = {}
        cores = len(os.sched_getaffinity(0))
        self.reserve = 1 if plan.embedded and cores > 1 else 0

    def __enter__(self) -> Targets:
        plan = self.plan
        try:
            if plan.server_cmd:
                self._start_cmd(plan.server_cmd)
            if plan.embedded:
                self.server, self.plan = start_embedded(plan, self.workload)
                self.watch.update({("server" if i == 0 else f"server{i}"): pid
                                   for i, pid in enumerate(self.server.pids)})
            if plan.server_pid:
                self.watch["server"] = plan.server_pid
            self._check()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_cmd(self, cmd: str) -> None:
        self.proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.watch["server"] = self.proc.pid
        time.sleep(0.5)  # give it a moment to listen; the probe below retries briefly
        if self.proc.poll() is not None:
            die(EXIT_UNREACHABLE, f"--server-cmd exited at once (code {self.proc.returncode})")

    def _check(self) -> None:
        plan = self.plan
        try:
            self.addrs = resolve(plan.targets)
        except OSError as exc:
            die(EXIT_USAGE, f"--host: cannot resolve {plan.targets[0].host!r}: {exc}")
        tries = 20 if self.proc is not None else 1
        for attempt in range(tries):
            try:
                probe(plan.targets, self.addrs, plan.connect_timeout_s)
                break
            except Unreachable as exc:
                if attempt == tries - 1:
                    die(EXIT_UNREACHABLE, str(exc))
                time.sleep(0.25)
        limit = raise_nofile()
        need = max(s.conns + s.listen * len(plan.targets) for s in plan.steps)
        if plan.until_degraded:
            need = max(need, plan.max_conns)
        if need > (limit - 64) * plan.workers:
            click.echo(f"harness: warning: {need} connections need more open files than "
                       f"{plan.workers} workers x {limit} allow", err=True)

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_embedded(plan: Plan, workload: Any) -> tuple[Any, Plan]:
    from harness.targets import launch
    cores = sorted(os.sched_getaffinity(0))
    cpu = cores[-1] if len(cores) > 1 else None
    nodes = EMBEDDED_CHAT_NODES if plan.embedded == "chat" else 1
    server = launch(plan.embedded, framing=workload.framing or plan.framing, nodes=nodes,
                    max_frame=plan.max_frame, cpu=cpu)
    targets = tuple(Target(h, p) for h, p in server.addresses)
    return server, cfg.with_targets(plan, targets)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt, like Ctrl-C, so every context
    manager on the way out (a started server, the workers) cleans up. Only in this process:
    a forked worker that inherits the handler still dies of SIGTERM as before."""
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def live_line() -> LiveLine | None:
    return LiveLine() if sys.stderr.isatty() else None


def interruptible(fn: Callable[[], RunOutcome]) -> RunOutcome:
    """SIGTERM ends a run like Ctrl-C: the coordinator keeps what was measured."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if sys.stderr.isatty():
            click.echo("\r" + " " * 100 + "\r", err=True, nl=False)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: results kept, marked partial


class LiveLine:
    """Once a second on stderr: step, connections open, replies/s over the last second, the
    p99 so far in this step (of the worst worker; "n/a" until a reply came), errors."""

    def __init__(self) -> None:
        self.last: tuple[float, int] | None = None
        self.step = -1

    def __call__(self, step: Any, progress: list[dict]) -> None:
        now = time.monotonic()
        received = sum(p["received"] for p in progress)
        rate = 0.0
        if step.index != self.step:
            self.step, self.last = step.index, None
        if self.last is not None and now > self.last[0]:
            rate = (received - self.last[1]) / (now - self.last[0])
        self.last = (now, received)
        p99s = [p["p99"] for p in progress if p["p99"] is not None]
        p99 = f"{max(p99s) / 1e6:.3f} ms" if p99s else "n/a"
        click.echo(f"\rstep {step.index + 1} conns={step.conns} open="
                   f"{sum(p['open'] for p in progress)} msgs/s={rate:,.0f} "
                   f"p99 so far (worst worker)={p99} "
                   f"errors={sum(p['errors'] for p in progress)}   ", err=True, nl=False)



def report(plan: Plan, workload: Any, outcome: RunOutcome, started: float, as_json: bool,
           html: bool = True, watched: list | None = None, warnings: list[str] | None = None
           ) -> int:
    watched = watched or [None] * len(outcome.steps)
    figures = [sweep_mod.figures(plan, workload, r) for r in outcome.steps]
    for f, w in zip(figures, watched, strict=True):
        if w is not None and w.summary:
            aggregate.with_resources(f.summary, w.summary, w.cores)
        trend = aggregate.trend_figures(f.series, w.rows if w is not None else [])
        if trend is not None:
            f.summary["trend"] = trend
    steps = [f.summary for f in figures]
    verdict = aggregate.degradation(steps, plan.degradation)
    failures = aggregate.threshold_failures(steps, plan.thresholds)
    doc = run_document(plan, workload, outcome, steps, verdict, failures, started)
    doc["warnings"] = warnings or []
    folder = results_mod.run_dir(plan.results_dir, plan.name, started)
    full = dict(doc)
    full["steps"] = [dict(s, histograms={k: h.to_dict() for k, h in f.histograms.items()},
                          second_histograms=[h.to_dict() for h in f.second_hists])
                     for s, f in zip(steps, figures, strict=True)]
    monitor_rows = [w.rows if w is not None else [] for w in watched]
    path = results_mod.write_run(folder, full, [f.series for f in figures], monitor_rows)
    page = write_html_report(folder) if html else None
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    else:
        click.echo(table.render(doc))
        for line in failures:
            click.echo(f"THRESHOLD FAILED: {line}")
        click.echo(f"results: {path}" + (f"  report: {page}" if page else ""))
    if outcome.error:
        click.echo(f"harness: a step failed: {outcome.error.splitlines()[-1]}", err=True)
    if outcome.interrupted:
        click.echo("harness: interrupted; partial results written", err=True)
    diagnosis = None if outcome.partial else aggregate.no_reply_diagnosis(
        steps, workload.framing or plan.framing)
    if diagnosis:
        click.echo(f"harness: {diagnosis}", err=True)
        return EXIT_UNREACHABLE
    unjudged = bool(steps) and verdict["judged"] == 0
    return (EXIT_FAIL if failures or outcome.error or outcome.partial or not steps or unjudged
            else EXIT_OK)


def write_html_report(folder: Any) -> Any:
    from harness.report import html as html_report
    try:
        return html_report.write_html(folder)
    except Exception as exc:  # a chart failure must not lose the measured run
        click.echo(f"harness: warning: HTML report not written: {type(exc).__name__}: {exc}",
                   err=True)
        return None


@main.command("report", epilog=EXIT_CODES_HELP)
@click.argument("run_folder", type=click.Path(exists=True, file_okay=True))
def report_cmd(run_folder: str) -> None:
    """Write report.html (self-contained, offline) for a run folder."""
    from harness.report import html as html_report
    try:
        results_mod.read_run(run_folder)
    except (OSError, ValueError) as exc:
        die(EXIT_USAGE, f"not a harness run folder: {exc}")
    try:
        page = html_report.write_html(run_folder)
    except (OSError, ValueError, KeyError) as exc:
        die(EXIT_USAGE, f"{run_folder}: not a harness run folder ({type(exc).__name__}: {exc})")
    click.echo(str(page))


def run_document(plan: Plan, workload: Any, outcome: RunOutcome, steps: list[dict],
                 verdict: dict, failures: list[str], started: float) -> dict:
    return {
        "schema_version": results_mod.SCHEMA_VERSION,
        "partial": outcome.partial,
        "argv": sys.argv[1:],
        "target": ",".join(t.label for t in plan.targets),
        "targets": [t.label for t in plan.targets],
        "embedded": plan.embedded,
        "workload": workload.name,
        "delivery": workload.delivery,
        "config": plan_dict(plan),
        "environment": environment(plan, started),
        "steps": steps,
        "degradation": verdict,
        "thresholds": {"failed": failures},
    }


def plan_dict(plan: Plan) -> dict:
    """The resolved config as JSON-able values (the corpus as its line count)."""
    from dataclasses import asdict
    d = asdict(plan)
    d["corpus"] = {"lines": len(plan.corpus)} if plan.corpus else None
    return d


def environment(plan: Plan, started: float) -> dict:
    nofile = raise_nofile()
    return {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "started_unix_s": round(started, 3), "ended_unix_s": round(time.time(), 3),
            "open_files_limit": nofile,
            "max_conns_allowed": plan.workers * max(nofile - 64, 0),
            "host": socket.gethostname(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "python": platform.python_version(), "numpy": np.__version__,
            "harness": __version__, "workers": plan.workers,
            "clock": "time.monotonic_ns (client and server on one host)"
            if plan.embedded or all(t.host.startswith(("127.", "::1", "localhost"))
                                    for t in plan.targets) else "time.monotonic_ns (client only)"}


# ---------------------------------------------------------------------------- search


@main.command(epilog=EXIT_CODES_HELP)
@run_options
@click.option("--slo", "slo_text", required=True, help="e.g. 'p99<5ms' or 'p99<5ms and p50<1ms'")
@click.option("--max-errors", default=None, help="largest error rate, e.g. 0.1%")
@click.option("--over", type=click.Choice(["rate", "conns"]), default="rate", show_default=True,
              help="search the total message rate (open loop) or the connection count")
@click.option("--lo", type=float, default=None,
              help="first load to probe (default: 100 msgs/s with --over rate, 1 connection "
                   "with --over conns); if it fails, the search halves it, down to lo/64")
@click.option("--hi", type=float, default=None,
              help="highest load to probe (default: 100,000 msgs/s with --over rate, 1,000 "
                   "connections with --over conns)")
@click.option("--tolerance", type=click.FloatRange(0.001, 1.0), default=0.05, show_default=True,
              help="stop when the bracket is narrower than this fraction of the load found")
@click.option("--max-probes", type=click.IntRange(2, 100), default=12, show_default=True)
def search(config_path: str | None, as_json: bool, no_report: bool, push_conns: str | None,
           scenario: str | None, env_name: str | None, slo_text: str, max_errors: str | None,
           over: str, lo: float | None, hi: float | None, tolerance: float, max_probes: int,
           **flags: Any) -> None:
    """Find, by bisection, the highest load that meets an SLO.

    --over rate: the total msgs/s over --conns connections (one value), open loop.
    --over conns: the connection count, at --rate per connection (or closed loop).
    Each probe is one step of --duration seconds.
    """
    from harness import capacity
    try:
        slo = capacity.parse_slo(slo_text)
        errors = capacity.parse_percent(max_errors) if max_errors is not None else None
    except capacity.SloError as exc:
        die(EXIT_USAGE, f"--slo: {exc}")
    except ValueError as exc:
        die(EXIT_USAGE, f"--max-errors: {exc}")
    plan, workload = plan_from_flags(config_path, push_conns, scenario, env_name, flags)
    base = plan.steps[0]
    lo = lo if lo is not None else (100.0 if over == "rate" else 1.0)
    hi = hi if hi is not None else (100_000.0 if over == "rate" else 1000.0)
    if not 0 < lo < hi:
        die(EXIT_USAGE, "--lo/--hi: need 0 < lo < hi")
    plan = search_plan(plan, over, lo)
    tried: list[float] = []  # loads whose probe started
    summaries: list[dict] = []  # the figures of each probe that finished
    result: dict | None = None
    try:
        with sigterm_interrupts(), Targets(plan, workload) as targets:
            plan = targets.plan
            with Session(plan, workload, targets.addrs, targets.watch, live_line(),
                         targets.reserve) as session:
                def probe_at(load: float) -> dict:
                    tried.append(load)
                    step = (replace(base, rate=load / base.conns) if over == "rate"
                            else replace(base, conns=int(load)))
                    out = interruptible(lambda: session.probe(step))
                    if out.interrupted or not out.steps:
                        raise KeyboardInterrupt
                    probe_plan = search_plan(plan, over, load)
                    summary = sweep_mod.figures(probe_plan, workload, out.steps[0]).summary
                    w = session.watched(out.steps[0])
                    if w.summary:
                        aggregate.with_resources(summary, w.summary, w.cores)
                    summaries.append(summary)
                    return summary
                result = capacity.search(probe_at, lo, hi, slo, errors, tolerance, max_probes,
                                         integer=over == "conns")
    except KeyboardInterrupt:
        if result is None:
            die(EXIT_FAIL, "interrupted during the search" if tried
                else "interrupted before the first step")
    assert result is not None
    for p, summary in zip(result["probes"], summaries, strict=True):
        p["service_p99_ms"] = (summary.get("service_ms") or {}).get("p99")
        p["behind_schedule"] = summary.get("behind_schedule")
    doc = {"max_load": result["max_load"], "unit": "msgs_s" if over == "rate" else "conns",
           "slo": slo_text, "max_errors": errors, "tolerance": tolerance,
           "converged": result["converged"], "bracket": result["bracket"],
           "searched_down": result["searched_down"], "floor": result["floor"],
           "probes": result["probes"], "conns": base.conns if over == "rate" else None}
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
    else:
        print_search(result, lo, slo_text, tolerance, "msgs/s" if over == "rate" else "conns")
    sys.exit(EXIT_OK if result["max_load"] is not None else EXIT_FAIL)


def load_text(x: float | None) -> str:
    """A load as a person reads it: whole numbers as they are, others to 3 significant
    digits; thousands separated."""
    if x is None:
        return "-"
    if float(x).is_integer():
        return f"{x:,.0f}"
    short = float(f"{x:.3g}")
    return f"{short:,.0f}" if abs(short) >= 100 else f"{short:g}"


def print_search(result: dict, lo: float, slo_text: str, tolerance: float, unit: str) -> None:
    for p in result["probes"]:
        p99 = "-" if p["p99_ms"] is None else f"{p['p99_ms']:.3f}"
        click.echo(f"probe {load_text(p['load']):>9} {unit}: {'ok ' if p['ok'] else 'FAIL'} "
                   f"p99 {p99} ms, {p['throughput_msgs_s']:,.0f} msgs/s  "
                   f"{'; '.join(p['violations'])}")
    if result["searched_down"]:
        click.echo(f"the first probe ({load_text(lo)} {unit}) failed: searched down, halving "
                   f"the load, to at most the floor of {load_text(result['floor'])} {unit}")
    if result["max_load"] is None:
        low = result["bracket"][1]
        click.echo(f"no load from {load_text(low)} to {load_text(lo)} {unit} meets {slo_text}")
    else:
        click.echo(f"max load meeting {slo_text}: {load_text(result['max_load'])} {unit} "
                   f"(tolerance {tolerance:.0%}"
                   f"{', not converged' if not result['converged'] else ''})")


def search_plan(plan: Plan, over: str, load: float) -> Plan:
    """--over rate probes total msgs/s on a fixed schedule: the open loop, whatever --rate
    said (``load`` spread over the first step's connections). --over conns: ``plan``."""
    if over != "rate":
        return plan
    rate = load / plan.steps[0].conns
    return replace(plan, pacing=replace(plan.pacing, mode="open", rate=rate))


# ---------------------------------------------------------------------------- merge


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--name", default="merged", show_default=True)
@click.option("--results-dir", default="results", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-report", is_flag=True)
def merge(runs: tuple[str, ...], name: str, results_dir: str, as_json: bool,
          no_report: bool) -> None:
    """Merge runs that several client machines made at once against one target.

    Histograms add bucket by bucket; percentiles are taken once, after the merge.
    """
    from harness import merge as merge_mod
    try:
        docs = [results_mod.read_run(r) for r in runs]
        series = [[results_mod.read_series(r, k) for k in range(len(d["steps"]))]
                  for r, d in zip(runs, docs, strict=True)]
    except (OSError, ValueError) as exc:
        die(EXIT_USAGE, f"not a harness run folder: {exc}")
    try:
        doc, cols, seconds, hists = merge_mod.merge_runs(docs, series)
    except merge_mod.MergeError as exc:
        die(EXIT_USAGE, f"merge: {exc}")
    except KeyError as exc:
        die(EXIT_USAGE, f"not a harness run folder: a step of one of the runs lacks {exc}")
    doc["merged_from"] = list(runs)
    doc["argv"] = sys.argv[1:]
    for w in doc["warnings"]:
        click.echo(f"harness: warning: {w}", err=True)
    full = dict(doc)
    full["steps"] = [dict(s, histograms={k: h.to_dict() for k, h in hs.items()},
                          second_histograms=[h.to_dict() for h in sec])
                     for s, hs, sec in zip(doc["steps"], hists, seconds, strict=True)]
    folder = results_mod.run_dir(results_dir, cfg._safe_name(name))
    path = results_mod.write_run(folder, full, cols)
    page = None if no_report else write_html_report(folder)
    failures = doc["thresholds"]["failed"]
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
    else:
        click.echo(table.render(doc))
        for line in failures:
            click.echo(f"THRESHOLD FAILED: {line}")
        click.echo(f"merged {len(runs)} runs: {path}" + (f"  report: {page}" if page else ""))
    sys.exit(EXIT_FAIL if failures else EXIT_OK)


# ---------------------------------------------------------------------------- calibrate


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--duration", type=click.FloatRange(0.5, 600), default=5.0, show_default=True)
@click.option("--conns", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--inflight", type=click.IntRange(1, 10000), default=16, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def calibrate(duration: float, conns: int, inflight: int, as_json: bool) -> None:
    """Measure this machine as a load generator: one worker core's ceiling against the
    built-in echo target, and the latency floor at a low rate."""
    from harness.calibrate import calibrate as run_calibration
    fig = run_calibration(duration=duration, conns=conns, inflight=inflight)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(fig) + b"\n")
        sys.exit(EXIT_FAIL if fig["busy"] else EXIT_OK)
    if fig["busy"]:
        b = fig["busy"]
        die(EXIT_FAIL, f"calibrate: no ceiling: the machine is busy: other processes took "
                       f"{b['others_pct']:.0f}% of core {b['core']} ({b['role']}'s) during the "
                       f"ceiling run ({fig['measured_msgs_s']:,.0f} msgs/s measured, not a "
                       "ceiling). Run it again on an idle machine.")
    st = fig["setup"]
    click.echo(f"ceiling: {fig['ceiling_msgs_s']:,.0f} echoed msgs/s from one worker core "
               f"({fig['ceiling_mb_s']:.1f} MB/s; {st['conns']} conns x {st['inflight']} in "
               f"flight, {st['size']} B {st['framing']}; latency recorded for every message)")
    click.echo(f"  client CPU {fig['client_cpu_pct']:.0f}%, echo server CPU "
               f"{fig['server_cpu_pct']:.0f}%" + ("  (the SERVER set this ceiling)"
                                                   if fig["server_bound"] else ""))
    click.echo(f"latency floor: p50 {fig['floor_p50_ms']:.3f} ms, p99 {fig['floor_p99_ms']:.3f} "
               f"ms at {fig['floor_rate_msgs_s']:,.0f} msgs/s ({st['floor_conns']} conns x "
               f"{st['floor_rate_per_conn']:.0f}/s, open loop)")


# ---------------------------------------------------------------------------- serve


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("kind", type=click.Choice(["echo", "chat"]))
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True)
@click.option("--bind", default="127.0.0.1", show_default=True)
@click.option("--framing", type=click.Choice(["newline", "len16", "len32"]), default="len32",
              show_default=True)
@click.option("--nodes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="chat: linked nodes on consecutive ports")
@click.option("--max-frame", type=click.IntRange(16), default=1 << 20, show_default=True)
def serve(kind: str, port: int, bind: str, framing: str, nodes: int, max_frame: int) -> None:
    """Start a built-in target server until Ctrl-C or SIGTERM."""
    from harness.targets import run_server
    if nodes > 1 and kind != "chat":
        die(EXIT_USAGE, "--nodes: only the chat server runs as a cluster")

    def ready(addresses: list[tuple[str, int]]) -> None:
        for h, p in addresses:
            click.echo(f"listening on {Target(h, p).label} ({kind}, {framing})")
        sys.stdout.flush()

    try:
        run_server(kind, bind=bind, port=port, framing=framing, nodes=nodes,
                   max_frame=max_frame, on_ready=ready)
    except OSError as exc:
        die(EXIT_USAGE, f"--port/--bind: cannot listen on {bind}:{port}: {exc.strerror or exc}")


if __name__ == "__main__":
    main()
