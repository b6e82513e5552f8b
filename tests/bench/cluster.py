"""Issue 14's figures for ``run --cluster``: merging 3 hosts' histograms, the overhead a
cluster step adds, and the start skew between hosts (network namespaces as hosts; root).

    PYTHONPATH=$PWD python tests/bench/cluster.py [STEPS]   (default 8)

Merge: 3 hosts x 2 workers, each latency histogram filled with 100,000 values, merged and
their percentiles taken (aggregate.step_figures), median of 50. Overhead: the same plan
(STEPS steps of 0.5 s, warm-up 0.2 s, 6 conns) run once on this host and once over 3
namespace hosts; the difference per step. Skew: per step, the spread of the machines' first
send after the agreed measure start (one clock: the hosts share this kernel).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.analysis import aggregate
from harness.core.histogram import Histogram
from harness.core.plan import Step
from harness.core.result import WorkerResult
from tests.support import harness_process, stop
from tests.test_cluster import Cluster, Hosts, _echo_server, run_json


def merge_ms() -> float:
    rng = np.random.default_rng(1)
    results = []
    for w in range(6):
        h = Histogram()
        h.record(rng.lognormal(12, 1, 100_000).astype(np.int64))
        results.append(WorkerResult(w, conns=1, connected=1, sent=len(h), received=len(h),
                                    latency=h, window_start=1, window_end=1 + 10**9))
    step = Step(0, 6, 1.0, None)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        aggregate.step_figures(step, results, np.zeros(1, dtype=np.int64), "echo", ["echo"],
                               False)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def runs(steps: int) -> tuple[float, float, list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    hosts = Hosts(3)
    hosts.create()
    server, target = _echo_server(tmp, hosts.gateway)
    c = Cluster(tmp)
    conns = ",".join(["6"] * steps)
    plan = ["--host", target, "--conns", conns, "--duration", "0.5", "--warmup", "0.2"]
    try:
        c.scheduler(hosts.gateway)
        for i in range(3):
            c.agent(f"host{i}", prefix=hosts.prefix(i), host=hosts.addr(i))
        c.wait_for(3)
        t = time.monotonic()
        r, doc = run_json(c, *plan)
        cluster_s = time.monotonic() - t
        t = time.monotonic()
        one = harness_process("run", "--json", "--no-report", "--results-dir", str(tmp / "one"),
                              *plan, cwd=tmp)
        one_s = time.monotonic() - t
    finally:
        c.close()
        stop(server)
        hosts.close()
    assert r.returncode == 0 and one.returncode == 0, (r.stderr, one.stderr)
    assert doc is not None and json.loads(one.stdout)
    skews = []
    for s in doc["cluster"]["steps"]:
        late = [m["start_late_us"] for m in s["machines"] if "start_late_us" in m]
        skews.append(max(late) - min(late))
    return cluster_s, one_s, skews


def main(steps: int) -> int:
    print(f"merge of 3 hosts x 2 workers' histograms + percentiles: {merge_ms():.2f} ms "
          "(median of 50)")
    cluster_s, one_s, skews = runs(steps)
    print(f"{steps} steps: cluster {cluster_s:.2f} s, one host {one_s:.2f} s: "
          f"+{(cluster_s - one_s) / steps:.2f} s per step (cluster start included)")
    print(f"start skew between 3 hosts: median {statistics.median(skews):.0f} us, "
          f"max {max(skews):.0f} us over {len(skews)} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8))
