"""Benchmark: what ``harness run --live`` costs. Runs the same closed-loop step with and
without --live (then with VIEWERS streams reading /events, standing in for open tabs: the
coordinator serves them all from the same encoded events), alternating, and prints the
medians of msgs/s and of the coordinator's own CPU (the ``harness`` process, not its
workers nor the embedded server), plus the bytes of one progress row with its seconds.

    python tests/bench/live_overhead.py [--rounds 3] [--conns 100] [--inflight 16]
        [--seconds 10] [--viewers 5]

Not a test (pytest does not collect it): a tool that prints figures. On a busy machine the
figures are noisy: say so beside them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def viewer(url: str, stop: threading.Event, got: list[int]) -> None:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    n = 0
    while not stop.is_set():
        line = resp.fp.readline()
        if not line:
            break
        n += len(line)
        if line.startswith(b"event: end"):
            break
    got.append(n)
    conn.close()


def one(args: argparse.Namespace, live: bool, viewers: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="live-bench-"))
    cmd = [sys.executable, "-m", "harness", "run", "--conns", str(args.conns), "--inflight",
           str(args.inflight), "--duration", str(args.seconds), "--warmup", "1", "--json",
           "--no-report", "--results-dir", str(tmp)] + (["--live"] if live else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    stop, got, threads = threading.Event(), [], []
    if live:
        assert proc.stderr is not None
        url = proc.stderr.readline().split("live page at ", 1)[1].strip()
        threads = [threading.Thread(target=viewer, args=(url, stop, got), daemon=True)
                   for _ in range(viewers)]
        for t in threads:
            t.start()
    cpu = 0.0
    while proc.poll() is None:
        try:
            t = ps.cpu_times()
            cpu = t.user + t.system
        except psutil.Error:
            break
        time.sleep(0.1)
    out, _ = proc.communicate()
    stop.set()
    for t in threads:
        t.join(5)
    step = json.loads(out)["steps"][0]
    return {"msgs_s": step["throughput_msgs_s"], "coord_cpu_s": cpu,
            "client_cpu_pct": step["client_cpu_pct"], "stream_bytes": sum(got)}


def progress_row_bytes() -> tuple[int, int]:
    """Pickled bytes of a progress row without and with its two closed seconds, for a
    second with a realistic spread of latencies (1,000 values over two decades)."""
    import pickle

    import numpy as np

    from harness.core.result import Times
    from harness.worker.recording import Recorder
    rec = Recorder(0, 100, 1, 64)
    rec.begin(Times(0, 0, None), 10**9)
    rec.start_measure()
    rng = np.random.default_rng(1)
    for sec in range(3):
        rec._series_add("received", 1000, sec * 10**9 + 1)
        rec.res.latency.record((10 ** rng.uniform(4.5, 6.5, 1000)).astype(np.int64))
    row = rec.progress(100, 3 * 10**9 + 1)
    bare = {k: row[k] for k in ("worker", "open", "sent", "received", "errors", "p99")}
    return len(pickle.dumps(("progress", bare))), len(pickle.dumps(("progress", row)))


def feed_costs(workers: int = 2, seconds: int = 600, viewers: int = 5) -> tuple[float, float]:
    """CPU µs the coordinator spends per second of the run merging ``workers`` rows (each
    with two closed seconds of 1,000 latencies over two decades), and CPU µs per event per
    viewer serving the stream (``viewers`` streams read in this process, so the readers'
    own CPU is included: an upper bound)."""
    from types import SimpleNamespace

    import numpy as np

    from harness.core.histogram import index_of
    from harness.report.live.feed import Feed
    from harness.report.live.server import LiveServer
    rng = np.random.default_rng(1)
    counts = np.bincount(index_of((10 ** rng.uniform(4.5, 6.5, 1000)).astype(np.int64)))
    nz = np.flatnonzero(counts)
    idx, cnt = nz.astype(np.uint16), counts[nz].astype(np.int32)
    feed, step = Feed(), SimpleNamespace(index=0, conns=100)
    t0 = time.process_time()
    for sec in range(1, seconds + 1):
        rows = [{"worker": w, "open": 50, "at": sec * 10**9, "cpu_s": sec * 0.5,
                 "wait_ns": 0, "kinds": {}, "reconnects": 0,
                 "seconds": [(s, 1000, 1000, 0, idx, cnt) for s in (sec - 2, sec - 1)
                             if s >= 0]} for w in range(workers)]
        feed.progress(step, rows)
    merge_us = (time.process_time() - t0) / seconds * 1e6
    server = LiveServer(feed, "127.0.0.1:0", "bench")
    server.start()
    feed.publish("end", {})
    t0 = time.process_time()
    threads = [threading.Thread(target=viewer, args=(server.url, threading.Event(), []))
               for _ in range(viewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    serve_us = (time.process_time() - t0) / (len(feed.events) * viewers) * 1e6
    server.stop()
    return merge_us, serve_us


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--viewers", type=int, default=5)
    ap.add_argument("--costs-only", action="store_true",
                    help="only the in-process costs (merge, serve, row bytes), no runs")
    args = ap.parse_args()
    if args.costs_only:
        args.rounds = 0
    modes = {"no --live": (False, 0), "--live, no viewer": (True, 0),
             f"--live, {args.viewers} viewers": (True, args.viewers)}
    rows: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for name, (live, viewers) in modes.items():
            rows[name].append(one(args, live, viewers))
    if args.rounds:
        print(f"{args.conns} conns x {args.inflight} inflight, closed loop, "
              f"{args.seconds:g} s, medians of {args.rounds} alternating rounds")
    for name, runs in rows.items() if args.rounds else ():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{name:22s} msgs/s {med['msgs_s']:>10,.0f}  coordinator CPU "
              f"{med['coord_cpu_s']:.2f} s  worker CPU {med['client_cpu_pct']:.0f}%  "
              f"stream bytes {med['stream_bytes']:,.0f}  (all: "
              f"{[round(r['msgs_s']) for r in runs]})")
    merge_us, serve_us = feed_costs(viewers=args.viewers)
    print(f"coordinator CPU: {merge_us:.0f} µs per second of the run to merge 2 workers' "
          f"rows; {serve_us:.0f} µs per event per viewer to serve ({args.viewers} viewers, "
          f"readers included)")
    bare, full = progress_row_bytes()
    print(f"progress row pickled: {bare} B before, {full} B with its two closed seconds")


if __name__ == "__main__":
    main()
