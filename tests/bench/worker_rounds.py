"""Benchmark: one worker's select rounds against the built-in echo server.

Prints, per (connections, in flight) configuration, the median of ``--repeat`` runs of:
messages per second received inside the measure window; µs per select round (window length
/ rounds in the window: the round trip as the worker sees it, waits included); the worker's
CPU µs per round (its CPU time / all rounds of the run: the fixed cost this tool watches);
messages per round; and the worker's CPU share. The worker is pinned to core 0, the echo
server (one node) to core 1. Every run is bounded: a connect deadline, a fixed window, the
reply timeout for the drain, and a hard stop a few seconds past it.

    python tests/bench/worker_rounds.py [--seconds 3] [--repeat 3] [--configs 5x1,10x1,100x16]
                                        [--profile] [--echo-c | --http]

A config is CONNSxINFLIGHT (closed loop) or CONNS@RATE (open loop, RATE msgs/s per
connection, e.g. 10000@1). ``--echo-c`` serves with tests/bench/echo.c (gcc -O2, as
tests/bench/peers.py builds it) instead of the built-in echo server: the worker's own
cost against a server that costs little. ``--http``: HTTP/1.1 GETs to nginx (one worker,
``return 200``, as tests/bench/http_peers.py starts it) instead of echo frames.

Not a test (pytest does not collect it): a tool for measuring changes to the hot loop.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.config import build as cfg  # noqa: E402
from harness.core.result import Times  # noqa: E402
from harness.run.shares import build_shares  # noqa: E402
from harness.targets import launch  # noqa: E402
from harness.wire.poller import Poller  # noqa: E402
from harness.worker.worker import Worker  # noqa: E402
from tests.bench.http_peers import nginx_module, start_nginx  # noqa: E402
from tests.bench.peers import Server, build_echo  # noqa: E402
from workloads import load  # noqa: E402

SEC = 1_000_000_000
CONFIGS = ((5, 1), (10, 1), (100, 16))


def run_once(conns: int, pace: str, seconds: float, profile: bool = False,
             echo_c: Path | None = None, http: int = 0) -> dict:
    """One run: a fresh echo server (or nginx's port ``http``), one worker, ``seconds`` of
    measure window. ``pace``: ``xK`` (K in flight) or ``@R`` (R msgs/s per connection)."""
    srv = None if http else Server(echo_c, 60) if echo_c is not None else launch("echo", cpu=1)
    try:
        h, p = ("127.0.0.1", http) if srv is None else ("127.0.0.1", srv.port) \
            if isinstance(srv, Server) else srv.addresses[0]
        flags = {"host": f"{h}:{p}", "conns": str(conns), "workers": 1, "size": "64",
                 "framing": "len32"}
        if http:
            flags = {"host": f"http://{h}:{p}/", "conns": str(conns), "workers": 1}
        if pace.startswith("@"):
            flags["rate"] = pace[1:]
        else:
            flags["inflight"] = int(pace[1:])
        plan = cfg.build_plan(cfg.settings({}, flags))
        wl = load(plan.workload)(plan.size, plan.seed)
        w = Worker(0, plan, wl, [(socket.AF_INET, (h, p))])
        share = build_shares(plan, plan.steps[0], type(wl), 7)[0]
        w.connect(share, Poller(), time.monotonic_ns() + 5 * SEC)
        hard_stop = time.monotonic() + seconds + 10

        def poll(_progress: dict) -> bool:
            return time.monotonic() < hard_stop

        now = time.monotonic_ns()
        begin = now + 10_000_000
        times = Times(begin, begin, begin + int(seconds * SEC))
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        res = w.run(times, poll)
        if prof:
            prof.disable()
            rows = int(os.environ.get("PROFILE_LINES", "25"))
            pstats.Stats(prof).sort_stats("tottime").print_stats(rows)
    finally:
        if srv is not None:
            srv.stop()
    rounds = w.round_counts[::-1]  # inside the measure window, in all
    n = max(rounds[0], 1)
    return {"msgs_s": res.received / seconds, "us_round": seconds * 1e6 / n,
            "cpu_us_round": res.cpu_s * 1e6 / max(rounds[1], 1),
            "msgs_round": res.received / n, "cpu": res.cpu_s / res.wall_s,
            "errors": sum(res.errors.values()), "lost": res.lost}


def split(config: str) -> tuple[int, str]:
    """``100x16`` -> (100, "x16"); ``10000@1`` -> (10000, "@1")."""
    m = re.fullmatch(r"(\d+)([x@][\d.]+)", config)
    if m is None:
        raise SystemExit(f"bad config {config!r}: CONNSxINFLIGHT or CONNS@RATE")
    return int(m.group(1)), m.group(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--configs", default=",".join(f"{c}x{k}" for c, k in CONFIGS),
                    help="comma-separated CONNSxINFLIGHT or CONNS@RATE")
    ap.add_argument("--profile", action="store_true", help="cProfile each run (slower)")
    ap.add_argument("--echo-c", action="store_true",
                    help="serve with tests/bench/echo.c on CPU 0 (the worker on CPU 1)")
    ap.add_argument("--http", action="store_true",
                    help="GETs to nginx on CPU 0 (the worker on CPU 1)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rounds-"))
    echo_c = build_echo(folder) if args.echo_c else None
    nginx, port = start_nginx(folder) if args.http else (None, 0)
    os.sched_setaffinity(0, {1} if echo_c or nginx else {0})  # the server takes the other core
    try:
        table(args, echo_c, port)
    finally:
        if nginx is not None:
            nginx_module().stop(nginx)
        shutil.rmtree(folder, ignore_errors=True)


def table(args: argparse.Namespace, echo_c: Path | None, port: int) -> None:
    print(f"{'conns':>5} {'pace':>8} {'msgs/s':>10} {'us/round':>9} {'cpu us/round':>12} "
          f"{'msgs/round':>10} {'cpu':>5}   runs (msgs/s)")
    for conns, pace in map(split, args.configs.split(",")):
        runs = [run_once(conns, pace, args.seconds, args.profile, echo_c, port)
                for _ in range(args.repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        each = " ".join(f"{r['msgs_s']:.0f}" for r in runs)
        bad = sum(r["errors"] + r["lost"] for r in runs)
        print(f"{conns:>5} {pace:>8} {med['msgs_s']:>10.0f} {med['us_round']:>9.1f} "
              f"{med['cpu_us_round']:>12.1f} {med['msgs_round']:>10.1f} {med['cpu']:>5.2f}   {each}"
              + (f"  ({bad} errors/lost)" if bad else ""), flush=True)


if __name__ == "__main__":
    main()
