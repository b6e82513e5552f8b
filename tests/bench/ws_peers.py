"""Benchmark: harness against tcpkali --ws, 64-byte WebSocket messages echoed by harness's own
WebSocket echo target (issue 11, Performance: the ceiling).

    PYTHONPATH=$PWD python tests/bench/ws_peers.py [--rounds 3] [--seconds 4] [--conns 100]

Starts ``harness serve echo --ws`` on a free port, pinned to CPU 0. Each round, pinned to
CPU 1 and in turn: ``tcpkali --ws -c N -m <64 bytes> -T S`` (echoed messages/s: the bytes it
received over its run, divided by 66, a 64-byte message's server frame; its CPU from this
process's waited-children rusage over its wall time), then ``harness run --inflight 16``
and ``--inflight 64`` (throughput_msgs_s, client_cpu_pct; harness's 64-byte messages are
the stamped len32 frame as the WebSocket payload). Prints one line per run, then a table of
medians with the ratio harness/tcpkali. tcpkali sends without waiting for echoes (it fills
the server's socket buffers), harness keeps ``--inflight`` messages outstanding per
connection. With ``--open-loop``, instead: 100 connections x 1,000 msgs/s each (``tcpkali
-r 1000``, ``harness run --rate 1000``), and the CPU each client used (the issue's second
figure: harness's CPU no more than tcpkali's). Every run has a timeout; the server is
stopped by its pid.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.bench import (
    CLIENT_CPU,
    SERVER_CPU,
    children_cpu,
    harness_run,
    rate_cpu_errors,
    the_step,
)

ROOT = Path(__file__).resolve().parents[2]
TCPKALI = ROOT.parent.parent / "shared" / "peers" / "tcpkali"  # /work/shared/peers/tcpkali
SIZE = 64


def tcpkali_path() -> Path:
    for p in (TCPKALI, Path("/work/shared/peers/tcpkali"), ROOT / "../shared/peers/tcpkali"):
        if p.exists():
            return p
    raise SystemExit("tcpkali not found (../shared/peers/tcpkali)")


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, "-m", "harness",
                             "serve", "echo", "--ws", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on ws://"):
        proc.kill()
        raise SystemExit(f"the ws echo target did not start: {line!r}")
    return proc, line.split()[2]


def run_tcpkali(url: str, conns: int, seconds: int, rate: int = 0) -> tuple[float, float]:
    """tcpkali's echoed messages/s and its CPU % of one core (``rate``: msgs/s per
    connection, 0: as fast as it can)."""
    hostport = url.removeprefix("ws://").rstrip("/")
    cpu0, t0 = children_cpu(), time.monotonic()
    paced = ["-r", str(rate)] if rate else []
    p = subprocess.run(["taskset", "-c", CLIENT_CPU, str(tcpkali_path()), "--ws",
                        "-c", str(conns), "-m", "x" * SIZE, *paced, "-T", f"{seconds}s",
                        hostport], capture_output=True, text=True, timeout=seconds + 30)
    wall, cpu = time.monotonic() - t0, children_cpu() - cpu0
    out = p.stdout + p.stderr
    got = re.search(r"Total data received:.*\((\d+) bytes\)", out)
    took = re.search(r"Test duration:\s*([\d.]+) s", out)
    if got is None or took is None:
        raise SystemExit(f"no totals in tcpkali's output:\n{out}")
    return int(got.group(1)) / (SIZE + 2) / float(took.group(1)), 100.0 * cpu / wall


def run_harness(url: str, conns: int, seconds: int, inflight: int,
                results: Path, rate: int = 0) -> tuple[float, float, int]:
    """harness's throughput_msgs_s, client_cpu_pct and error count (``rate``: open loop)."""
    pacing = ["--rate", str(rate)] if rate else ["--inflight", str(inflight)]
    cmd = harness_run("--host", url, "--conns", str(conns), "--duration", str(seconds),
                      "--warmup", "1", *pacing, "--size", str(SIZE), "--results-dir",
                      str(results))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=ROOT)
    return rate_cpu_errors(the_step(p.returncode, p.stdout, p.stderr))


def table(kali: list, h16: list, h64: list) -> str:
    med = statistics.median
    k_rate, k_cpu = med(r for r, _ in kali), med(c for _, c in kali)
    rows = [("tcpkali --ws (firehose)", k_rate, k_cpu, 1.0)]
    for name, runs in (("harness --inflight 16", h16), ("harness --inflight 64", h64)):
        rate, cpu = med(r for r, _, _ in runs), med(c for _, c, _ in runs)
        rows.append((name, rate, cpu, rate / k_rate if k_rate else 0.0))
    lines = [f"{'client':<26} {'echoed msgs/s':>14} {'CPU %':>7} {'vs tcpkali':>10}"]
    lines += [f"{n:<26} {r:>14,.0f} {c:>7.1f} {x:>10.2f}" for n, r, c, x in rows]
    return "\n".join(lines)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=5)


def open_loop(url: str, a: argparse.Namespace, folder: Path) -> int:
    """100 x 1,000 msgs/s: the CPU each client needs for the same load."""
    med = statistics.median
    kali, har = [], []
    for i in range(1, a.rounds + 1):
        kali.append(run_tcpkali(url, a.conns, a.seconds, 1000))
        har.append(run_harness(url, a.conns, a.seconds, 1, folder, 1000))
        print(f"round {i}: tcpkali {kali[-1][0]:,.0f} msgs/s cpu {kali[-1][1]:.1f}% | "
              f"harness {har[-1][0]:,.0f} msgs/s cpu {har[-1][1]:.1f}% err {har[-1][2]}",
              flush=True)
    print(f"\nmedians of {a.rounds} rounds, {a.conns} connections x 1,000 msgs/s, "
          f"{a.seconds} s each")
    print(f"{'client':<12} {'echoed msgs/s':>14} {'CPU %':>7}")
    print(f"{'tcpkali':<12} {med(r for r, _ in kali):>14,.0f} {med(c for _, c in kali):>7.1f}")
    print(f"{'harness':<12} {med(r for r, _, _ in har):>14,.0f} "
          f"{med(c for _, c, _ in har):>7.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--open-loop", action="store_true")
    a = ap.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="ws-peers-"))
    server, url = start_server()
    if a.open_loop:
        try:
            return open_loop(url, a, folder)
        finally:
            stop(server)
    kali, h16, h64 = [], [], []
    try:
        for i in range(1, a.rounds + 1):
            kali.append(run_tcpkali(url, a.conns, a.seconds))
            h16.append(run_harness(url, a.conns, a.seconds, 16, folder))
            h64.append(run_harness(url, a.conns, a.seconds, 64, folder))
            print(f"round {i}: tcpkali {kali[-1][0]:,.0f} msgs/s cpu {kali[-1][1]:.1f}% | "
                  f"harness x16 {h16[-1][0]:,.0f} cpu {h16[-1][1]:.1f}% err {h16[-1][2]} | "
                  f"x64 {h64[-1][0]:,.0f} cpu {h64[-1][1]:.1f}% err {h64[-1][2]}", flush=True)
    finally:
        stop(server)
    print(f"\nmedians of {a.rounds} rounds, {a.conns} connections, {a.seconds} s each, "
          f"{SIZE}-byte messages; harness serve echo --ws on CPU {SERVER_CPU}, clients on "
          f"CPU {CLIENT_CPU}")
    print(table(kali, h16, h64))
    return 0


if __name__ == "__main__":
    sys.exit(main())
