"""Benchmark: does harness with one worker core saturate mosquitto's single core at QoS 0?

    python tests/bench/mosquitto_sat.py [--pubs 10] [--subs 10] [--inflight 64]
        [--size 64] [--seconds 5] [--qos 0] [--rate R]

mosquitto (Debian's, a generated config on a free port) runs pinned to CPU 0, harness
(``python -m harness run --workers 1``, the chat workload over mqtt://) pinned to CPU 1.
Each one's CPU is read from /proc/PID/stat (utime + stime; harness: its worker process, the
child that sends and receives) every 0.2 s, and taken over the measure window that run.json
reports. It prints both, the messages and deliveries per second, and the verdict: saturated
when mosquitto is at >= 95% of its core and harness's worker below 90% of its own.

Not a test (pytest does not collect it): a tool that prints figures. A quiet 2-core machine
gives figures worth quoting; on a shared one, say so beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid``; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Sampler(threading.Thread):
    """(wall time, mosquitto CPU s, harness workers' CPU s) every 0.2 s."""

    def __init__(self, broker: int, client: int) -> None:
        super().__init__(daemon=True)
        self.broker, self.client = broker, client
        self.rows: list[tuple[float, float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            workers = children(self.client)
            self.rows.append((time.time(), cpu_s(self.broker),
                              sum(cpu_s(w) for w in workers)))

    def window(self, start: float, end: float) -> tuple[float, float]:
        """CPU % of one core of mosquitto and of harness's worker within [start, end]."""
        inside = [r for r in self.rows if start <= r[0] <= end and r[2] > 0]
        if len(inside) < 2:
            raise SystemExit("too few samples inside the measure window: lengthen --seconds")
        (t0, b0, c0), (t1, b1, c1) = inside[0], inside[-1]
        return 100 * (b1 - b0) / (t1 - t0), 100 * (c1 - c0) / (t1 - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(folder: Path) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise SystemExit("mosquitto is not installed (tests/setup.sh installs it)")
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest none\nuser root\n")
    proc = subprocess.Popen(["taskset", "-c", "0", exe, "-c", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not listen within 10 s")


def run(a: argparse.Namespace, port: int, folder: Path, broker_pid: int) -> None:
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "harness", "run", "--host",
           f"mqtt://127.0.0.1:{port}/sat", "--workload", "chat", "--workers", "1",
           "--conns", str(a.pubs), "--listen", str(a.subs),
           "--size", str(a.size), "--mqtt-qos", str(a.qos), "--duration", str(a.seconds),
           "--warmup", "1", "--timeout", "5", "--json", "--results-dir", str(folder)]
    cmd += ["--rate", str(a.rate)] if a.rate else ["--inflight", str(a.inflight)]
    client = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    sampler = Sampler(broker_pid, client.pid)
    sampler.start()
    out, err = client.communicate(timeout=a.seconds + 120)
    sampler.done.set()
    if not out.strip():
        raise SystemExit(f"harness failed: {err.strip()[-400:]}")
    step = json.loads(out.splitlines()[0])["steps"][0]
    start = step["measure_started_unix_s"]
    broker_pct, client_pct = sampler.window(start, start + step["duration_s"])
    report(step, broker_pct, client_pct)


def report(step: dict, broker_pct: float, client_pct: float) -> None:
    dur = step["duration_s"]
    print(f"published      {step['sent'] / dur:12,.0f} msgs/s  ({step['sent']:,} in {dur:.1f} s)")
    print(f"delivered      {step['deliveries'] / dur:12,.0f} msgs/s  "
          f"(expected {step['deliveries_expected']:,}, lost {step['lost']:,})")
    print(f"mosquitto CPU  {broker_pct:12.1f} %  (CPU 0)")
    print(f"harness CPU    {client_pct:12.1f} %  (its worker, CPU 1; run.json says "
          f"{step['client_cpu_pct']} %)")
    full, room = broker_pct >= 95, client_pct < 90
    print(f"verdict        {'SATURATED' if full and room else 'not saturated'}: mosquitto "
          f"{'>=' if full else '<'} 95%, harness {'<' if room else '>='} 90%")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--pubs", type=int, default=10)
    ap.add_argument("--subs", type=int, default=10)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--qos", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="open loop: msgs/s per publisher (0: closed loop, --inflight each)")
    a = ap.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs (mosquitto on 0, harness on 1)")
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_mosquitto(Path(tmp))
        try:
            run(a, port, Path(tmp), broker.pid)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
