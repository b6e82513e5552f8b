"""Benchmark: harness against wrk, HTTP/1.1 GET keep-alive to one nginx (issue 10, Performance).

    PYTHONPATH=$PWD python tests/bench/http_peers.py [--rounds 3] [--seconds 5] [--conns 100]
        [--tls]

Starts nginx (Debian nginx-light; one worker process, ``return 200 "hello\\n"``, access log
off) on a free loopback port, pinned to CPU 0. Each round, pinned to CPU 1 and in turn:
``wrk -t1 -cN -dS`` (its requests/s; its CPU from this process's waited-children rusage over
its wall time), ``harness run --inflight 1`` (throughput_msgs_s, client_cpu_pct) and
``harness run --inflight 16`` (throughput_msgs_s). Prints one line per run, then a table of
medians with the ratio harness/wrk. Every run has a timeout; nginx is stopped by its pid.
``--tls``: the same over HTTPS (a CA and a server certificate made with the openssl command
line, tests/certs.py; harness verifies with ``--ca``, wrk does not verify). Each connection
does one handshake before the measure window, so this is keep-alive over TLS.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script
from tests.support.bench import (  # noqa: E402
    CLIENT_CPU,
    SERVER_CPU,
    children_cpu,
    harness_run,
    rate_cpu_errors,
    the_step,
)

SERVER = """
  keepalive_requests 100000000;
  server {{
    {listen}
    location / {{ return 200 "hello\\n"; }}
  }}"""


def nginx_module() -> Any:
    """tests/nginx.py (this file runs as a script, so the repository joins the path)."""
    from tests import nginx
    return nginx


def start_nginx(folder: Path, tls: Any = None) -> tuple[subprocess.Popen, int]:
    nginx = nginx_module()
    port = nginx.free_port()
    listen = (nginx.ssl_listen(port, tls.cert, tls.key) if tls is not None
              else f"listen 127.0.0.1:{port};")
    try:
        return nginx.start(folder, SERVER.format(listen=listen), (port,), cpu=SERVER_CPU), port
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def run_wrk(url: str, conns: int, seconds: int) -> tuple[float, float]:
    """wrk's requests/s and its CPU % of one core (CPU time / wall time of its run)."""
    cpu0, t0 = children_cpu(), time.monotonic()
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}",
                          f"-d{seconds}s", url], capture_output=True, text=True,
                         timeout=seconds + 30, check=True).stdout
    wall, cpu = time.monotonic() - t0, children_cpu() - cpu0
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if m is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out}")
    if "Socket errors" in out or "Non-2xx" in out:
        print(f"  wrk reported errors: {out.strip()}", file=sys.stderr)
    return float(m.group(1)), 100.0 * cpu / wall


def run_harness(url: str, conns: int, seconds: int, inflight: int,
                results: Path, extra: tuple[str, ...] = ()) -> tuple[float, float, int]:
    """harness's throughput_msgs_s, client_cpu_pct and error count (exit 0 or 1 accepted:
    1 is a client-bound or threshold verdict, the figures are still measured)."""
    cmd = harness_run("--host", url, "--conns", str(conns), "--duration", str(seconds),
                      "--warmup", "1", "--inflight", str(inflight), "--results-dir", str(results),
                      *extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    return rate_cpu_errors(the_step(p.returncode, p.stdout, p.stderr))


def table(wrk: list, h1: list, h16: list) -> str:
    med = statistics.median
    w_rps, w_cpu = med(r for r, _ in wrk), med(c for _, c in wrk)
    h_rps, h_cpu = med(r for r, _, _ in h1), med(c for _, c, _ in h1)
    p_rps, p_cpu = med(r for r, _, _ in h16), med(c for _, c, _ in h16)
    rows = [("wrk -t1 (no pipelining)", w_rps, w_cpu, 1.0),
            ("harness --inflight 1", h_rps, h_cpu, h_rps / w_rps),
            ("harness --inflight 16", p_rps, p_cpu, p_rps / w_rps)]
    lines = [f"{'client':<24} {'req/s':>10} {'CPU %':>7} {'vs wrk':>7}"]
    lines += [f"{n:<24} {r:>10,.0f} {c:>7.1f} {x:>7.2f}" for n, r, c, x in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--tls", action="store_true", help="HTTPS (harness verifies with --ca)")
    a = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not installed (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="http-peers-"))
    tls = None
    if a.tls:
        nginx_module()
        from tests import certs
        tls = certs.make(folder / "certs")
    server, port = start_nginx(folder, tls)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
    extra = ("--ca", str(tls.ca)) if tls else ()
    wrk, h1, h16 = [], [], []
    try:
        for i in range(1, a.rounds + 1):
            wrk.append(run_wrk(url, a.conns, a.seconds))
            h1.append(run_harness(url, a.conns, a.seconds, 1, folder / "results", extra))
            h16.append(run_harness(url, a.conns, a.seconds, 16, folder / "results", extra))
            print(f"round {i}: wrk {wrk[-1][0]:,.0f} req/s cpu {wrk[-1][1]:.1f}% | "
                  f"harness x1 {h1[-1][0]:,.0f} cpu {h1[-1][1]:.1f}% err {h1[-1][2]} | "
                  f"x16 {h16[-1][0]:,.0f} cpu {h16[-1][1]:.1f}% err {h16[-1][2]}", flush=True)
    finally:
        nginx_module().stop(server)
    print(f"\nmedians of {a.rounds} rounds, {a.conns} connections, {a.seconds} s each"
          f"{' over TLS' if tls else ''}; "
          f"nginx (1 worker) on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}")
    print(table(wrk, h1, h16))
    return 0


if __name__ == "__main__":
    sys.exit(main())
