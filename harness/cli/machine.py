"""The commands about this machine: serve (a built-in target) and calibrate (this
machine as a load generator)."""

from __future__ import annotations

import sys

import click
import orjson

from harness.cli.common import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_USAGE, die
from harness.config.help import CALIBRATE_EXIT_HELP, SERVE_EXIT_HELP, calibrate_flags, serve_flags
from harness.report import lines


@click.command(epilog=SERVE_EXIT_HELP)
@serve_flags
def serve(kind: str, port: str, bind: str, framing: str, nodes: int, max_frame: int,
          ws: bool) -> None:
    """Start a built-in target server until Ctrl-C or SIGTERM."""
    from harness.core.plan import Target
    from harness.targets import TargetError, run_server
    first, count = serve_ports(port, kind)
    if nodes > 1 and kind != "chat":
        die(EXIT_USAGE, "--nodes: only the chat server runs as a cluster")
    nodes = max(nodes, count)
    label = kind
    if ws:
        kind = f"ws-{kind}"

    def ready(addresses: list[tuple[str, int]]) -> None:
        for h, p in addresses:
            t = Target(h, p, "ws", "/") if ws else Target(h, p)
            click.echo(f"listening on {t.label} ({label}, {'ws, ' if ws else ''}{framing})")
        sys.stdout.flush()

    try:
        run_server(kind, bind=bind, port=first, framing=framing, nodes=nodes,
                   max_frame=max_frame, on_ready=ready)
    except (OSError, TargetError, UnicodeError) as exc:
        reason = getattr(exc.__cause__ or exc, "strerror", None) or exc
        die(EXIT_USAGE, f"--port/--bind: cannot listen on {bind}:{port}: {reason}")


def serve_ports(text: str, kind: str) -> tuple[int, int]:
    """``--port``: (first port, how many): ``P`` (0-65535), or ``FIRST-LAST`` for echo (a
    process per port)."""
    from harness.core.pools import port_pool
    text = text.strip()
    try:
        pool = port_pool(text)
    except ValueError as exc:
        die(EXIT_USAGE, f"--port: {exc}")
    if pool is not None:
        if kind != "echo":
            die(EXIT_USAGE, f"--port: a range ({text}) serves echo only; chat takes --nodes")
        return pool[0], len(pool)
    if not text.isdigit() or int(text) > 65535:
        die(EXIT_USAGE, f"--port: {text!r} is not a port 0-65535 or a range FIRST-LAST")
    return int(text), 1


@click.command(epilog=CALIBRATE_EXIT_HELP)
@calibrate_flags
def calibrate(duration: float, conns: int, inflight: int, as_json: bool) -> None:
    """Measure this machine as a load generator: one worker core's ceiling against the
    built-in echo target, and the latency floor at a low rate."""
    from harness.run.calibrate import calibrate as run_calibration
    fig = run_calibration(duration=duration, conns=conns, inflight=inflight)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(fig) + b"\n")
    if fig["busy"]:
        b = fig["busy"]
        die(EXIT_INCONCLUSIVE, f"calibrate: no ceiling: the machine is busy: other processes "
                               f"took {b['others_pct']:.0f}% of core {b['core']} ({b['role']}'s) "
                               f"during the ceiling run ({fig['measured_msgs_s']:,.0f} msgs/s "
                               "measured, not a ceiling). Run it again on an idle machine.")
    if as_json:
        sys.exit(EXIT_OK)
    for line in lines.calibration(fig):
        click.echo(line)
