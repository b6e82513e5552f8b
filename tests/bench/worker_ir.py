"""Benchmark: the instructions one worker spends per message (callgrind), a figure that a
busy machine does not change the way it changes CPU time.

    python tests/bench/worker_ir.py [--configs 100@10/2,10x1] [--seconds 2]
    python tests/bench/worker_ir.py --profile [--configs ...]  (cProfile: calls per round)

For each config, one worker runs in-process against tests/bench/echo.c (built with gcc -O2,
started natively, outside valgrind) under ``valgrind --tool=callgrind``, which counts only
inside the worker's ``run`` (``--toggle-collect`` on the ``functools.reduce`` that calls it):
warm-up, window and drain, not the start-up, imports and connects. Prints instructions per
reply (Ir/msg) and per select round (Ir/round), and replies per round: a cost per message
is only comparable at the same replies per round (a worker that falls behind, as under
callgrind on a loaded machine, makes bigger rounds). For the open loop's pieces at a fixed
round size, whatever the load, see tests/bench/round_ir.py.

A config is CONNSxINFLIGHT (closed loop) or CONNS@RATE/INSTANTS (open loop, RATE msgs/s per
connection, the phases on a grid of period / INSTANTS, so each send instant carries CONNS /
INSTANTS messages). Under callgrind the worker runs ~50x slower, so the open loop is slowed
down by the same factor to keep its shape: ``100@10/2`` is ``100@1000`` (the issue-21 load,
a 0.5 ms grid: 2 instants a period, ~50 messages each), 100 times slower. Closed loops run as
fast as callgrind lets them: every poll then finds all replies in (one round reads them all).

Not a test (pytest does not collect it): a tool for measuring changes to the hot loop.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import pstats
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.config import build as cfg  # noqa: E402
from harness.core.result import Times  # noqa: E402
from harness.run.shares import build_shares  # noqa: E402
from harness.wire.poller import Poller  # noqa: E402
from harness.worker import schedule  # noqa: E402
from harness.worker.worker import Worker  # noqa: E402
from tests.bench.peers import Server, build_echo  # noqa: E402
from workloads import load  # noqa: E402

SEC = 1_000_000_000
WARMUP_S = 0.5
CONFIGS = "100@10/2,10x1"


def parse(config: str) -> tuple[int, int, float, int]:
    """``100@10/2`` -> (100, 0, 10.0, 2); ``10x1`` -> (10, 1, 0.0, 0)."""
    m = re.fullmatch(r"(\d+)(?:x(\d+)|@([\d.]+)/(\d+))", config)
    if m is None:
        raise SystemExit(f"bad config {config!r}: CONNSxINFLIGHT or CONNS@RATE/INSTANTS")
    conns, inflight, rate, instants = m.groups()
    if inflight:
        return int(conns), int(inflight), 0.0, 0
    return int(conns), 0, float(rate), int(instants)


def connected_worker(port: int, config: str) -> Worker:
    """One in-process worker for ``config``, connected to the echo server on ``port``."""
    conns, inflight, rate, instants = parse(config)
    flags: dict = {"host": f"127.0.0.1:{port}", "conns": str(conns), "workers": 1,
                   "size": "64", "framing": "len32"}
    if rate:
        flags["rate"] = str(rate)
        grid = int(SEC / rate) // instants
        schedule.phase_grid = lambda n, r: grid  # type: ignore[assignment]
    else:
        flags["inflight"] = inflight
    plan = cfg.build_plan(cfg.settings({}, flags))
    wl = load("echo")(64, 1)
    w = Worker(0, plan, wl, [(socket.AF_INET, ("127.0.0.1", port))])
    share = build_shares(plan, plan.steps[0], type(wl), 7)[0]
    w.connect(share, Poller(), time.monotonic_ns() + 30 * SEC)
    return w


def run_worker(port: int, config: str, seconds: float, profile: bool = False) -> dict:
    """One in-process worker against the echo server on ``port``: its counts."""
    w = connected_worker(port, config)
    hard_stop = time.monotonic() + WARMUP_S + seconds + 30
    begin = time.monotonic_ns() + 10_000_000
    measure = begin + int(WARMUP_S * SEC)
    times = Times(begin, measure, measure + int(seconds * SEC))
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    # callgrind counts only inside functools.reduce (--toggle-collect): the run, not
    # the start-up, imports and connects
    res = functools.reduce(lambda _a, _b: w.run(times, lambda _p: time.monotonic() < hard_stop),
                           range(1), None)
    rounds = w.round_counts[:1]
    if prof:
        prof.disable()
        _print_profile(prof, rounds[0], res.sent_all)
    return {"received": res.received, "replies": res.replies, "sent": res.sent_all,
            "rounds": rounds[0], "errors": sum(res.errors.values()), "lost": res.lost,
            "behind": res.behind, "cpu_s": res.cpu_s}


def _print_profile(prof: cProfile.Profile, rounds: int, msgs: int) -> None:
    """The hot functions by own time, with calls per round and per message."""
    st = pstats.Stats(prof)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:30]  # type: ignore[attr-defined]
    print(f"{rounds} rounds, {msgs} messages sent")
    print(f"{'calls/round':>11} {'calls/msg':>9} {'own us/call':>11} {'cum us/call':>11}  function")
    for (file, line, name), (_cc, nc, tt, ct, _callers) in rows:
        print(f"{nc / max(rounds, 1):>11.2f} {nc / max(msgs, 1):>9.3f} {tt / nc * 1e6:>11.2f} "
              f"{ct / nc * 1e6:>11.2f}  {Path(file).name}:{line}({name})")


def callgrind(port: int, config: str, seconds: float, out: Path) -> tuple[int, dict]:
    """Instructions (Ir) of the worker's run in this script's ``--once`` run under
    callgrind (collected inside ``functools.reduce`` only), and its counts."""
    cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
           "--toggle-collect=functools_reduce", f"--callgrind-out-file={out}",
           sys.executable, __file__, "--once", config, "--port", str(port),
           "--seconds", str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"})
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or m is None:
        raise SystemExit(f"callgrind run failed: {proc.stderr[-2000:]}")
    return int(m.group(1)), json.loads(proc.stdout.strip().splitlines()[-1])


def measure(exe: Path, config: str, seconds: float, folder: Path) -> dict:
    """Ir per reply and per round of one run (warm-up, window and drain)."""
    with Server(exe, int(3 * seconds + 300)) as srv:
        ir, run = callgrind(srv.port, config, seconds, folder / f"cg.{config.replace('/', '_')}")
    return {"config": config, "ir_msg": ir / max(run["replies"], 1),
            "ir_round": ir / max(run["rounds"], 1),
            "msgs_round": run["replies"] / max(run["rounds"], 1), "run": run, "ir": ir}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=CONFIGS)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--profile", action="store_true", help="cProfile, natively, no callgrind")
    ap.add_argument("--keep", type=Path, help="keep the callgrind files in this folder")
    ap.add_argument("--once", help=argparse.SUPPRESS)  # the run callgrind measures
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.once:
        print(json.dumps(run_worker(args.port, args.once, args.seconds)), flush=True)
        return
    folder = Path(tempfile.mkdtemp(prefix="worker-ir-"))
    try:
        exe = build_echo(folder)
        for config in args.configs.split(","):
            if args.profile:
                with Server(exe, int(args.seconds + 60)) as srv:
                    print(config, run_worker(srv.port, config, args.seconds, True), flush=True)
                continue
            r = measure(exe, config, args.seconds, args.keep or folder)
            print(f"{config:>10}: {r['ir_msg']:>9.0f} Ir/msg {r['ir_round']:>11.0f} Ir/round "
                  f"{r['msgs_round']:>6.1f} msgs/round   run {r['run']}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
