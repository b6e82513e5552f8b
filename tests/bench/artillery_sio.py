"""Benchmark: harness against Artillery's Socket.IO engine (``artillery`` and
``artillery-engine-socketio-v3`` from the npm registry), the same Node socket.io 4.x chat
room, the same emit rate (issue 24: messages per second per client core, and the broadcast
latency Artillery cannot give).

    PYTHONPATH=$PWD python tests/bench/artillery_sio.py [--clients 20] [--rate 20]
                                                       [--seconds 10] [--rounds 1]

Starts tests/node/sio_chat.js (its room sends every "message" to every client, the sender
included) pinned to CPU 0. Artillery and its Socket.IO engine are in ``ARTILLERY_DIR``
(tests/bench/node unless set; the first run installs them there from its package.json,
about 40 s that the test suite does not need, so tests/setup.sh leaves them out). Each
round, pinned to CPU 1 and in turn:

* Artillery: ``--clients`` virtual users arrive at once, each connects over WebSocket and
  emits "message" ``rate x seconds`` times with a think of 1/rate s between emits;
* harness: ``--workload chat --conns CLIENTS --rate RATE --duration SECONDS`` (open loop,
  the same emit rate per connection), its deliveries and broadcast latency from run.json.

A client's CPU is the CPU seconds of its process tree, read from /proc/self/stat (the
waited-for children's utime + stime, cutime and cstime) before and after it ran. "msgs/s per
core" is the messages it handled (its emits, plus the broadcasts it received: harness counts
its deliveries; Artillery's are taken as the server sent them, emits x clients, since
Artillery does not count what it is sent) over its CPU seconds. Artillery's think time does not
include the emit itself, so its rate may fall short of the asked one: both achieved rates are
printed. Every run has a timeout; the server is stopped by its pid.

Not a test (pytest does not collect it): a tool that prints figures. Figures taken on a busy
machine are not quiet-machine figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.bench import CLIENT_CPU, SERVER_CPU, harness_run, the_step

ROOT = Path(__file__).resolve().parents[2]
ARTILLERY_DIR = Path(os.environ.get("ARTILLERY_DIR", Path(__file__).resolve().parent / "node"))
TICKS = os.sysconf("SC_CLK_TCK")


def children_cpu_proc() -> float:
    """CPU seconds of this process's waited-for children (cutime + cstime of
    /proc/self/stat)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / TICKS  # cutime, cstime (fields 16, 17)


def artillery_bin() -> Path:
    """Artillery's command, installed into ARTILLERY_DIR from the npm registry if missing."""
    exe = ARTILLERY_DIR / "node_modules" / ".bin" / "artillery"
    engine = ARTILLERY_DIR / "node_modules" / "artillery-engine-socketio-v3"
    if not exe.exists() or not engine.is_dir():
        ARTILLERY_DIR.mkdir(parents=True, exist_ok=True)
        print(f"installing artillery and artillery-engine-socketio-v3 into {ARTILLERY_DIR}",
              flush=True)
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")  # (its browser tests)
        # tests/bench/node's package.json names the versions; elsewhere, the newest
        named = [] if (ARTILLERY_DIR / "package.json").exists() else [
            "artillery", "artillery-engine-socketio-v3"]
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", *named],
                       cwd=ARTILLERY_DIR, check=True, timeout=1200, env=env)
    return exe


def start_room() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, "node",
                             str(ROOT / "tests" / "node" / "sio_chat.js")], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORTS"):
        proc.kill()
        raise SystemExit(f"the node room did not start (run tests/setup.sh): {line!r}")
    return proc, int(line.split()[1])


def scenario(port: int, clients: int, rate: float, seconds: float) -> str:
    """Artillery's script: every client arrives at once, emits rate x seconds times."""
    count = int(rate * seconds)
    return json.dumps({
        "config": {"target": f"http://127.0.0.1:{port}",
                   "phases": [{"duration": 1, "arrivalCount": clients}],
                   "engines": {"socketio-v3": {"transports": ["websocket"]}}},
        "scenarios": [{"name": "room", "engine": "socketio-v3", "flow": [
            {"loop": [{"emit": ["message", {"text": "x" * 40}]}, {"think": 1.0 / rate}],
             "count": count}]}]})


def run_artillery(port: int, a: argparse.Namespace, folder: Path) -> dict:
    script = folder / "room.json"
    script.write_text(scenario(port, a.clients, a.rate, a.seconds))
    cpu0, t0 = children_cpu_proc(), time.monotonic()
    report = folder / "artillery.json"
    p = subprocess.run(["taskset", "-c", CLIENT_CPU, str(artillery_bin()), "run", "--output",
                        str(report), str(script)], cwd=ARTILLERY_DIR, capture_output=True,
                       text=True, timeout=a.seconds * 4 + 120)
    wall, cpu = time.monotonic() - t0, children_cpu_proc() - cpu0
    emitted = _emits(report)
    if p.returncode != 0 or emitted is None:
        raise SystemExit(f"artillery exited {p.returncode}:\n{(p.stdout + p.stderr)[-2000:]}")
    handled = emitted * (1 + a.clients)  # its emits, and the broadcasts the room sent it
    return {"client": "artillery", "emits": emitted, "handled": handled, "cpu_s": cpu,
            "wall_s": wall, "emit_rate": emitted / wall, "latency": None}


def _emits(report: Path) -> int | None:
    """The emits Artillery counted (its report's ``socketio.emit`` counter)."""
    if not report.exists():
        return None
    counters = json.loads(report.read_text()).get("aggregate", {}).get("counters", {})
    found = [n for k, n in counters.items() if k.endswith("socketio.emit")]
    return int(found[0]) if found else None


def run_harness(port: int, a: argparse.Namespace, folder: Path) -> dict:
    cmd = harness_run("--host", f"sio://127.0.0.1:{port}/", "--workload", "chat",
                      "--conns", str(a.clients), "--rate", str(a.rate), "--duration",
                      str(a.seconds), "--warmup", "0", "--timeout", "2", "--results-dir",
                      str(folder))
    cpu0, t0 = children_cpu_proc(), time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds * 4 + 120,
                       cwd=ROOT)
    wall, cpu = time.monotonic() - t0, children_cpu_proc() - cpu0
    step = the_step(p.returncode, p.stdout, p.stderr)
    sent, got = int(step["sent_all"]), int(step["replies"])
    return {"client": "harness", "emits": sent, "handled": sent + got, "cpu_s": cpu,
            "wall_s": wall, "emit_rate": step["sent"] / max(step["duration_s"], 1e-9),
            "latency": step["latency_ms"], "lost": step["lost"],
            "deliveries": step.get("deliveries"), "expected": step.get("deliveries_expected")}


def line(r: dict) -> str:
    per_core = r["handled"] / r["cpu_s"] if r["cpu_s"] else float("nan")
    out = (f"{r['client']:<10} emits {r['emits']:>8,} ({r['emit_rate']:>8,.0f}/s)  handled "
           f"{r['handled']:>10,}  CPU {r['cpu_s']:6.2f} s  msgs/s per core {per_core:>10,.0f}")
    lat = r["latency"]
    if lat:
        out += (f"  broadcast latency ms p50 {lat['p50']} p99 {lat['p99']} max {lat['max']}"
                f"  deliveries {r['deliveries']:,}/{r['expected']:,} lost {r['lost']}")
    else:
        out += "  broadcast latency: not measured (Artillery times emits and acks only)"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--rate", type=float, default=20.0, help="emits per second per client")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args(argv)
    artillery_bin()
    folder = Path(tempfile.mkdtemp(prefix="artillery-sio-"))
    server, port = start_room()
    try:
        for i in range(1, a.rounds + 1):
            print(f"round {i}: {a.clients} clients x {a.rate:g} emits/s x {a.seconds:g} s, "
                  f"node socket.io room on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}",
                  flush=True)
            for run in (run_artillery, run_harness):
                print("  " + line(run(port, a, folder)), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
