"""Benchmark: the in-order ring (harness.wire.protocol.InOrder) for one round, build and
pop, as HTTP, redis and memcached use it: one request and one reply per connection (the
short paths, as at ``--inflight 1``), and K of each (the ranked paths).

    python tests/bench/inorder_ring.py [--tree /tmp/old] [--tree /work/main]

Each tree is run in its own process (its own ``harness``), and prints the minimum over 5
repeats of 2,000 rounds. Pure computation, no sockets: a change's cost per round shows even
on a machine that is not quiet, but compare trees in the same run.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ONE = """
import inspect, sys, timeit
sys.path.insert(0, sys.argv[1])
import numpy as np
from harness.wire import framing
from harness.wire.batch import Outbound
from harness.wire.protocol import InOrder
from workloads.base import Kind
out = Outbound(framing.LEN32, [Kind("msg", 1.0, 64)], [b"x" * 64], 7, 0, 1)
for n, m, k in ((100, 25, 1), (1000, 100, 1), (100, 25, 4)):
    p = InOrder(framing.LEN32, out, 1 << 20, 7, n, worker=5)
    idx = np.sort(np.random.default_rng(1).choice(n, m, replace=False)).astype(np.int64)
    counts = np.full(m, k, dtype=np.int64)
    gid = (idx + 100).repeat(counts)
    tint = np.arange(m * k, dtype=np.int64)
    conn = idx.repeat(counts)
    few = "few" in inspect.signature(p._pop).parameters  # (older trees: no hint)
    def one():
        p.build(gid, idx, counts, 0, tint, 0)
        p._pop(conn, k == 1) if few else p._pop(conn)
    best = min(timeit.repeat(one, number=2000, repeat=5)) / 2000
    print(f"{sys.argv[1]}: {n} conns, {m} a round x {k}: build + pop {best * 1e6:.1f} us")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append",
                    default=None, help="a source tree (repeatable; default: this one)")
    trees = ap.parse_args().tree or [str(Path(__file__).resolve().parents[2])]
    for tree in trees:
        subprocess.run([sys.executable, "-c", ONE, tree], check=True, cwd="/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
