"""The command line: run, serve, calibrate, report. The only module that prints or exits.

Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO failed; 2 usage or
configuration error (one line naming the bad flag or key); 3 the target could not be
reached at all.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import sys
import time
from typing import Any

import click
import numpy as np
import orjson

from harness import __version__, aggregate
from harness import config as cfg
from harness.coordinator import Coordinator, RunOutcome, Unreachable, probe, raise_nofile, resolve
from harness.plan import Plan, Target
from harness.report import results as results_mod
from harness.report import table

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EMBEDDED_CHAT_NODES = 3  # --workload chat without --host runs against a linked 3-node cluster
EXIT_CODES_HELP = """Exit codes: 0 ran and every threshold held; 1 ran and a threshold or SLO
failed; 2 usage or configuration error; 3 the target could not be reached at all."""


def die(code: int, message: str) -> None:
    click.echo(f"harness: {message}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Usage errors exit 2 with one line (click already uses 2; keep the message short)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", True)
        return super().main(*args, **kwargs)


@click.group(cls=Group, epilog=EXIT_CODES_HELP)
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
    ("--size", int, "bytes per message on the wire, framing included"),
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
    return f


@main.command(epilog=EXIT_CODES_HELP)
@run_options
def run(config_path: str | None, as_json: bool, no_report: bool, push_conns: str | None,
        **flags: Any) -> None:
    """Sweep connection counts (or message counts) against a server and report."""
    if push_conns is not None:
        if flags["conns"] is not None:
            die(EXIT_USAGE, "--push-conns is an alias of --conns: give one of them")
        flags["conns"] = push_conns
    try:
        file = cfg.load_file(config_path)
        merged = cfg.settings(file, flags)
        both = flags["rate"] is not None and flags["inflight"] is not None
        plan = cfg.build_plan(merged, rate_and_inflight=both)
        workload = load_workload(plan)
    except cfg.ConfigError as exc:
        die(EXIT_USAGE, str(exc))
    sys.exit(execute(plan, workload, as_json, not no_report))


def load_workload(plan: Plan) -> Any:
    from workloads import WorkloadError, load
    try:
        cls = load(plan.workload)
        return cls(plan.size, plan.seed)
    except WorkloadError as exc:
        raise cfg.ConfigError(str(exc)) from None
    except Exception as exc:  # a user's workload whose constructor fails
        raise cfg.ConfigError(f"workload {plan.workload}: {type(exc).__name__}: {exc}") from None


def execute(plan: Plan, workload: Any, as_json: bool, html: bool = True) -> int:
    """Run the plan end to end; returns the exit code. Results are written even if cut short."""
    server = None
    if plan.embedded:
        server, plan = start_embedded(plan, workload)
    try:
        try:
            addrs = resolve(plan.targets)
        except OSError as exc:
            die(EXIT_USAGE, f"--host: cannot resolve {plan.targets[0].host!r}: {exc}")
        try:
            probe(plan.targets, addrs, plan.connect_timeout_s)
        except Unreachable as exc:
            die(EXIT_UNREACHABLE, str(exc))
        limit = raise_nofile()
        need = max(s.conns + s.listen * len(plan.targets) for s in plan.steps)
        if need > limit * plan.workers - 64 * plan.workers:
            click.echo(f"harness: warning: {need} connections need more open files than "
                       f"{plan.workers} workers x {limit} allow", err=True)
        started = time.time()
        outcome = sweep(plan, workload, addrs)
    finally:
        if server is not None:
            server.stop()
    return report(plan, workload, outcome, started, as_json, html)


def start_embedded(plan: Plan, workload: Any) -> tuple[Any, Plan]:
    from harness.targets import launch
    cores = sorted(os.sched_getaffinity(0))
    cpu = cores[-1] if len(cores) > 1 else None
    nodes = EMBEDDED_CHAT_NODES if plan.embedded == "chat" else 1
    server = launch(plan.embedded, framing=workload.framing or plan.framing, nodes=nodes,
                    max_frame=plan.max_frame, cpu=cpu)
    targets = tuple(Target(h, p) for h, p in server.addresses)
    return server, cfg.with_targets(plan, targets)


def sweep(plan: Plan, workload: Any, addrs: list) -> RunOutcome:
    reserve = 1 if plan.embedded and len(os.sched_getaffinity(0)) > 1 else 0
    live = LiveLine() if sys.stderr.isatty() else None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        with Coordinator(plan, workload, addrs, live, reserve) as coord:
            outcome = coord.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if live is not None:
            live.clear()
    return outcome


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: results kept, marked partial


class LiveLine:
    """Once a second on stderr: step, connections open, msgs/s, p99, errors."""

    def __init__(self) -> None:
        self.last: tuple[float, int] | None = None

    def __call__(self, step: Any, progress: list[dict]) -> None:
        now = time.monotonic()
        received = sum(p["received"] for p in progress)
        rate = 0.0
        if self.last is not None and now > self.last[0]:
            rate = (received - self.last[1]) / (now - self.last[0])
        self.last = (now, received)
        p99s = [p["p99"] for p in progress if p["p99"] is not None]
        p99 = f"{max(p99s) / 1e6:.3f}" if p99s else "-"
        click.echo(f"\rstep {step.index + 1} conns={step.conns} open="
                   f"{sum(p['open'] for p in progress)} msgs/s={rate:,.0f} p99<={p99} ms "
                   f"errors={sum(p['errors'] for p in progress)}   ", err=True, nl=False)

    def clear(self) -> None:
        click.echo("\r" + " " * 100 + "\r", err=True, nl=False)


def report(plan: Plan, workload: Any, outcome: RunOutcome, started: float, as_json: bool,
           html: bool = True) -> int:
    figures = [aggregate.step_figures(r.step, r.results, r.receivers, workload.delivery,
                                      [k.name for k in workload.kinds()],
                                      plan.pacing.mode == "open")
               for r in outcome.steps]
    for f, r in zip(figures, outcome.steps, strict=True):
        f.summary["partial"] = f.summary["partial"] or r.partial
        for node in f.summary.get("per_node", ()):
            node["target"] = plan.targets[node["node"]].label
    steps = [f.summary for f in figures]
    verdict = aggregate.degradation(steps, plan.degradation)
    failures = aggregate.threshold_failures(steps, plan.thresholds)
    doc = run_document(plan, workload, outcome, steps, verdict, failures)
    folder = results_mod.run_dir(plan.results_dir, plan.name, started)
    full = dict(doc)
    full["steps"] = [dict(s, histograms={k: h.to_dict() for k, h in f.histograms.items()})
                     for s, f in zip(steps, figures, strict=True)]
    path = results_mod.write_run(folder, full, [f.series for f in figures])
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
    return EXIT_FAIL if failures or outcome.error or outcome.partial or not steps else EXIT_OK


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
        page = html_report.write_html(run_folder)
    except (OSError, ValueError, KeyError) as exc:
        die(EXIT_USAGE, f"{run_folder}: not a harness run folder ({type(exc).__name__}: {exc})")
    click.echo(str(page))


def run_document(plan: Plan, workload: Any, outcome: RunOutcome, steps: list[dict],
                 verdict: dict, failures: list[str]) -> dict:
    return {
        "schema_version": results_mod.SCHEMA_VERSION,
        "partial": outcome.partial,
        "target": ",".join(t.label for t in plan.targets),
        "targets": [t.label for t in plan.targets],
        "embedded": plan.embedded,
        "workload": workload.name,
        "delivery": workload.delivery,
        "config": plan_dict(plan),
        "environment": environment(plan),
        "steps": steps,
        "degradation": verdict,
        "thresholds": {"failed": failures},
    }


def plan_dict(plan: Plan) -> dict:
    from dataclasses import asdict
    return asdict(plan)


def environment(plan: Plan) -> dict:
    return {"host": socket.gethostname(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "python": platform.python_version(), "numpy": np.__version__,
            "harness": __version__, "workers": plan.workers,
            "clock": "time.monotonic_ns (client and server on one host)"
            if plan.embedded or all(t.host.startswith(("127.", "::1", "localhost"))
                                    for t in plan.targets) else "time.monotonic_ns (client only)"}


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
        return
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
