"""Benchmark: the cost of users with state (issue 23, Speed): requests per CPU-second of the
client for pre-rendered requests, for the same requests with a check on the body, and for
requests that use a captured value (rendered at send time), against one nginx.

    PYTHONPATH=$PWD python tests/bench/flows_cost.py [--rounds 3] [--seconds 3] [--conns 50]
        [--baseline /path/to/an/older/tree]

Starts nginx (one worker process, pinned to CPU 0; ``/login`` answers ``{"token": ...}``,
``/x`` answers ``{"ok": true}``). Each round runs, in turn and pinned to CPU 1, one
``harness run`` per mode, closed loop, ``--inflight 1``, no think time, one [[users]] class:

* ``pre-rendered``: ``GET /x`` (the fast path: bytes rendered at plan time);
* ``checked``: the same with ``check = { json = { "$.ok" = true } }`` (each body parsed);
* ``captured``: ``on_start = ["login"]`` capturing ``$.token``, then ``GET /x`` with
  ``Authorization: Bearer {token}`` (each request finished at send time, each response
  read for the connection's state; cookies off);
* ``baseline``: with ``--baseline DIR``, ``pre-rendered`` again with harness imported from
  DIR (say, main before this branch): pre-rendered requests are to be no slower.

Requests per CPU-second = throughput_msgs_s / (client_cpu_pct / 100), of the one worker.
Prints one line per run, then the medians (of the rounds, modes alternating) and each
mode's ratio to pre-rendered. Not a test (pytest does not collect it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script
from tests import nginx  # noqa: E402
from tests.support.bench import SERVER_CPU, harness_run, rate_cpu_errors, the_step  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PLANS = {
    "pre-rendered": '[[users]]\nname = "u"\n[[users.requests]]\nname = "x"\npath = "/x"\n',
    "checked": '[[users]]\nname = "u"\n[[users.requests]]\nname = "x"\npath = "/x"\n'
               'check = { json = { "$.ok" = true } }\n',
    "captured": '[[users]]\nname = "u"\non_start = ["login"]\ncookies = false\n'
                '[[users.requests]]\nname = "login"\nmethod = "POST"\npath = "/login"\n'
                'capture = { token = "$.token" }\n'
                '[[users.requests]]\nname = "x"\npath = "/x"\n'
                'headers = { Authorization = "Bearer {token}" }\n',
}


def one(mode: str, port: int, folder: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(requests per CPU-second, requests/s) of one run of ``mode``."""
    plan = folder / f"{mode}.toml"
    plan.write_text(PLANS["pre-rendered" if mode == "baseline" else mode])
    env = dict(os.environ, PYTHONPATH=str(args.baseline if mode == "baseline" else ROOT))
    cmd = harness_run("--host", f"http://127.0.0.1:{port}/", "--requests", str(plan),
                      "--conns", str(args.conns), "--duration", str(args.seconds),
                      "--warmup", "0.5", "--inflight", "1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60,
                       cwd=folder, env=env)
    rate, cpu, errors = rate_cpu_errors(the_step(r.returncode, r.stdout, r.stderr))
    if errors:
        raise SystemExit(f"{mode}: {errors} errors in the run")
    return rate / max(cpu / 100.0, 1e-9), rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a tree whose harness runs the pre-rendered mode again")
    args = ap.parse_args()
    if nginx.executable() is None:
        raise SystemExit("nginx is not installed (tests/setup.sh installs nginx-light)")
    modes = [*PLANS, *(["baseline"] if args.baseline else [])]
    got: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = nginx.free_port()
        server = nginx.server(port, {"= /login": '{\\"token\\": \\"abc123\\"}',
                                     "= /x": '{\\"ok\\": true}'}, keepalive_requests=1000000)
        proc = nginx.start(folder, server, (port,), cpu=SERVER_CPU)
        try:
            for k in range(args.rounds):
                for mode in modes:
                    per_cpu, rate = one(mode, port, folder, args)
                    got[mode].append((per_cpu, rate))
                    print(f"round {k + 1} {mode:<13} {per_cpu:>10,.0f} req/CPU-s "
                          f"{rate:>10,.0f} req/s", flush=True)
        finally:
            nginx.stop(proc)
    base = statistics.median(v[0] for v in got["pre-rendered"])
    print(f"\nmedians of {args.rounds} (modes alternating), {args.conns} connections:")
    print(f"{'mode':<13} {'req/CPU-s':>10} {'req/s':>10} {'vs pre-rendered':>16}")
    for mode in modes:
        per_cpu = statistics.median(v[0] for v in got[mode])
        rate = statistics.median(v[1] for v in got[mode])
        print(f"{mode:<13} {per_cpu:>10,.0f} {rate:>10,.0f} {per_cpu / base:>15.2f}x")


if __name__ == "__main__":
    main()
