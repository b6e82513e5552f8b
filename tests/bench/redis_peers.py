"""Benchmark: harness against redis-benchmark, redis PING pipelined (issue 10, Performance).

    PYTHONPATH=$PWD python tests/bench/redis_peers.py [--rounds 3] [--seconds 4] [--conns 50]
        [--pipeline 16]

Starts redis-server (no persistence) on a free loopback port, pinned to CPU 0. Each round,
pinned to CPU 1 and in turn: ``redis-benchmark -P 16 -c N -t ping_mbulk -n R`` (the PING
sent as a RESP array, as harness sends it; R = ``--requests``, sized for a run of a few
seconds; its requests/s from ``--csv``, its CPU from this process's waited-children rusage
over its wall time) and ``harness run --workload redis --redis-cmd ping --conns N
--inflight 16 --duration S --warmup 0.5`` (throughput_msgs_s, client_cpu_pct). The server's
CPU over each run comes from /proc. ``--pipeline 1`` compares them unpipelined
(``-P 1``, ``--inflight 1``). Prints one line per round, then a table of medians with
the ratio harness/redis-benchmark. Every run has a timeout; redis-server is stopped by its
pid.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import free_port, stop, wait_listening
from tests.support.bench import (
    CLIENT_CPU,
    SERVER_CPU,
    children_cpu,
    harness_run,
    rate_cpu_errors,
    the_step,
)

TICK = os.sysconf("SC_CLK_TCK")


def start_redis(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(proc, port, name="redis-server")
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return proc, port


def proc_cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_peer(port: int, conns: int, requests: int, server: int, depth: int = 16
             ) -> tuple[float, float, float]:
    """redis-benchmark's requests/s, its CPU % and the server's CPU % (of one core)."""
    s0, cpu0, t0 = proc_cpu_s(server), children_cpu(), time.monotonic()
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "redis-benchmark", "-p", str(port),
                          "-P", str(depth), "-c", str(conns), "-t", "ping_mbulk", "-n",
                          str(requests), "--csv"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    wall = time.monotonic() - t0
    cpu, srv = children_cpu() - cpu0, proc_cpu_s(server) - s0
    row = next((line for line in out.splitlines() if line.startswith('"PING_MBULK"')), None)
    if row is None:
        raise SystemExit(f"no PING_MBULK row in redis-benchmark's output:\n{out}")
    return float(row.split(",")[1].strip('"')), 100.0 * cpu / wall, 100.0 * srv / wall


def run_harness(port: int, conns: int, seconds: float, results: Path,
                server: int, depth: int = 16) -> tuple[float, float, float, int]:
    """harness's throughput_msgs_s, client_cpu_pct, the server's CPU % over the run (the
    warm-up and set-up included, so a little low) and the error count (exit 0 or 1
    accepted: 1 is a client-bound verdict, the figures are still measured)."""
    cmd = harness_run("--workload", "redis", "--redis-cmd", "ping", "--host",
                      f"127.0.0.1:{port}", "--conns", str(conns), "--inflight", str(depth),
                      "--duration", str(seconds), "--warmup", "0.5", "--results-dir", str(results))
    s0, t0 = proc_cpu_s(server), time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    srv = 100.0 * (proc_cpu_s(server) - s0) / (time.monotonic() - t0)
    rate, cpu, errors = rate_cpu_errors(the_step(p.returncode, p.stdout, p.stderr))
    return rate, cpu, srv, errors


def table(peer: list, ours: list, depth: int = 16) -> str:
    med = statistics.median
    p_rps, p_cpu, p_srv = (med(r[k] for r in peer) for k in range(3))
    h_rps, h_cpu, h_srv = (med(r[k] for r in ours) for k in range(3))
    lines = [f"{'client':<34} {'req/s':>10} {'CPU %':>7} {'server %':>9} {'vs peer':>8}"]
    lines += [f"{f'redis-benchmark -P {depth} (mbulk)':<34} {p_rps:>10,.0f} {p_cpu:>7.1f} "
              f"{p_srv:>9.1f} {1.0:>8.2f}",
              f"{f'harness --inflight {depth}':<34} {h_rps:>10,.0f} {h_cpu:>7.1f} {h_srv:>9.1f} "
              f"{h_rps / p_rps:>8.2f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0, help="harness's measure window")
    ap.add_argument("--requests", type=int, default=None,
                    help="redis-benchmark's -n (a few seconds at its rate: 2,000,000 "
                         "pipelined, 600,000 at depth 1 to 7)")
    ap.add_argument("--pipeline", type=int, default=16,
                    help="requests in flight per connection: redis-benchmark -P, harness "
                         "--inflight (1: unpipelined)")
    ap.add_argument("--conns", type=int, default=50)
    a = ap.parse_args(argv)
    requests = a.requests or (2_000_000 if a.pipeline >= 8 else 600_000)
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not installed (tests/setup.sh installs redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="redis-peers-"))
    server, port = start_redis(folder)
    peer, ours = [], []
    try:
        for i in range(1, a.rounds + 1):
            peer.append(run_peer(port, a.conns, requests, server.pid, a.pipeline))
            ours.append(run_harness(port, a.conns, a.seconds, folder / "results", server.pid,
                                    a.pipeline))
            print(f"round {i}: redis-benchmark {peer[-1][0]:,.0f} req/s cpu {peer[-1][1]:.1f}% "
                  f"server {peer[-1][2]:.1f}% | harness {ours[-1][0]:,.0f} cpu "
                  f"{ours[-1][1]:.1f}% server {ours[-1][2]:.1f}% err {ours[-1][3]}", flush=True)
    finally:
        stop(server)
    print(f"\nmedians of {a.rounds} rounds, {a.conns} connections, {a.pipeline} in flight; "
          f"redis-server on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}")
    print(table(peer, ours, a.pipeline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
