"""Benchmark: wrk and one in-process harness worker per source tree, alternating, against one
nginx: requests/s and the client's user and system time per request.

    python tests/bench/http_trees.py --trees /tmp/old,/work/main [--rounds 3] [--seconds 4]
        [--conns 100] [--inflight 1]

Starts nginx (one worker, ``return 200``, as tests/bench/http_peers.py does) on CPU 0. Each
round runs ``wrk -t1 -cN`` (its user and system time from this process's waited-children
rusage), then each tree's worker in a child process of its own, on CPU 1: a closed loop of
``--conns`` connections at ``--inflight``, ``--seconds`` of measure window, its user and
system time from ``os.times()`` around ``Worker.run`` (so imports and connects are not
counted). Prints one line per run (with the worker's sent, received, errors and status
counts) and the medians. Quiet machine only (``../shared/tools/quiet`` first): the user
time is what differs between clients, the kernel's share is about the same.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SEC = 1_000_000_000


def one(tree: str, port: int, seconds: float, conns: int, inflight: int) -> None:
    """In the child: one worker of ``tree``'s code against nginx; prints a JSON line."""
    sys.path.insert(0, tree)
    os.chdir(tree)
    from harness.config import build as cfg
    from harness.core.result import Times
    from harness.run.shares import build_shares
    from harness.wire.poller import Poller
    from harness.worker.worker import Worker
    from workloads import load
    os.sched_setaffinity(0, {1})
    plan = cfg.build_plan(cfg.settings({}, {"host": f"http://127.0.0.1:{port}/",
                                            "conns": str(conns), "workers": 1,
                                            "inflight": inflight}))
    wl = load(plan.workload)(plan.size, plan.seed)
    w = Worker(0, plan, wl, [(socket.AF_INET, ("127.0.0.1", port))])
    share = build_shares(plan, plan.steps[0], type(wl), 7)[0]
    w.connect(share, Poller(), time.monotonic_ns() + 5 * SEC)
    begin = time.monotonic_ns() + 10_000_000
    t0 = os.times()
    res = w.run(Times(begin, begin, begin + int(seconds * SEC)))
    t1 = os.times()
    n = max(res.received, 1)
    print(json.dumps({"rate": res.received / seconds, "user": (t1.user - t0.user) / n * 1e6,
                      "sys": (t1.system - t0.system) / n * 1e6, "sent": res.sent,
                      "received": res.received, "errors": sum(res.errors.values()),
                      "lost": res.lost, "status": {str(k): v for k, v in res.status.items()}}))


def wrk(port: int, seconds: float, conns: int) -> dict:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}",
                          f"-d{int(seconds)}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"(\d+) requests in", out)
    if m is None:
        raise SystemExit(f"no request count in wrk's output:\n{out}")
    n = int(m.group(1))
    return {"rate": n / int(seconds), "user": (r1.ru_utime - r0.ru_utime) / n * 1e6,
            "sys": (r1.ru_stime - r0.ru_stime) / n * 1e6}


def worker(tree: str, port: int, a: argparse.Namespace) -> dict:
    p = subprocess.run([sys.executable, str(HERE), "--one", tree, "--port", str(port),
                        "--seconds", str(a.seconds), "--conns", str(a.conns), "--inflight",
                        str(a.inflight)], capture_output=True, text=True,
                       timeout=a.seconds + 60)
    if p.returncode:
        raise SystemExit(f"{tree}: {p.stderr[-2000:]}")
    got: dict = json.loads(p.stdout.strip().splitlines()[-1])
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", default=str(HERE.parents[2]))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        one(a.one, a.port, a.seconds, a.conns, a.inflight)
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not installed (apt-get install wrk)")
    sys.path.insert(0, str(HERE.parents[2]))
    from tests.bench.http_peers import nginx_module, start_nginx
    folder = Path(tempfile.mkdtemp(prefix="http-trees-"))
    server, port = start_nginx(folder)
    rows: dict[str, list[dict]] = {}
    try:
        for _ in range(a.rounds):
            for name in ["wrk", *a.trees.split(",")]:
                r = wrk(port, a.seconds, a.conns) if name == "wrk" else worker(name, port, a)
                rows.setdefault(name, []).append(r)
                more = "" if name == "wrk" else (
                    f"  sent {r['sent']} received {r['received']} errors {r['errors']} "
                    f"lost {r['lost']} status {r['status']}")
                print(f"{name:<24} {r['rate']:>10,.0f} req/s  user {r['user']:.2f}  "
                      f"system {r['sys']:.2f} µs/req{more}", flush=True)
    finally:
        nginx_module().stop(server)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nmedians of {a.rounds} rounds, {a.conns} connections, --inflight {a.inflight}")
    for name, rs in rows.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("rate", "user", "sys")}
        print(f"{name:<24} {med['rate']:>10,.0f} req/s  user {med['user']:.2f}  "
              f"system {med['sys']:.2f}  total {med['user'] + med['sys']:.2f} µs/req")
    return 0


if __name__ == "__main__":
    sys.exit(main())
