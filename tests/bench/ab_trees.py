"""Benchmark: harness's worker CPU in two (or more) source trees, alternating, on loads that
leave the worker room (so CPU, not a saturated core, shows the difference).

    python tests/bench/ab_trees.py --trees /tmp/old,/work/main [--loads 100@400,10@2000]
        [--rounds 3] [--seconds 4]

A load is CONNS@RATE (open loop, RATE msgs/s per connection). Each round runs every tree
once per load, in turn, each against a fresh tests/bench/echo.c on CPU 0 with harness on
CPU 1, through that tree's own tests/bench/peers.py (so each tree runs its own code); the
table gives the medians of msgs/s, worker CPU % and CPU µs per message. Quiet machine only,
as peers.py: it refuses to start above a 0.5 load average or beside a busy process.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ONE = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(sys.argv[1]) / "tests" / "bench"))
import peers
exe = peers.build_echo(Path(tempfile.mkdtemp()))
load = peers.Load("ab", int(sys.argv[2]), rate=float(sys.argv[3]))
with peers.Server(exe, 60) as srv:
    f = peers.run_harness([srv.port], load, float(sys.argv[4]), Path(tempfile.mkdtemp()))
print(json.dumps([f.msgs_s, f.cpu_pct]))
"""


def one(tree: str, conns: str, rate: str, seconds: float) -> tuple[float, float]:
    """(msgs/s, worker CPU %) of one run of ``tree``'s harness."""
    p = subprocess.run([sys.executable, "-c", ONE, tree, conns, rate, str(seconds)],
                       capture_output=True, text=True, timeout=seconds + 120,
                       env={**os.environ, "PYTHONPATH": tree}, cwd=tree)
    if p.returncode != 0:
        raise SystemExit(f"{tree}: {p.stderr.strip()[-400:]}")
    msgs, cpu = json.loads(p.stdout.strip().splitlines()[-1])
    return float(msgs), float(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", required=True, help="comma-separated source trees")
    ap.add_argument("--loads", default="100@400,10@2000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--busy-ok", action="store_true", help="as peers.py's")
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import peers
    peers.BUSY_OK = a.busy_ok
    peers.require_quiet(first=True)
    load_at_start = Path("/proc/loadavg").read_text().split()[0]
    trees, loads = a.trees.split(","), [x.split("@") for x in a.loads.split(",")]
    got: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for i in range(1, a.rounds + 1):
        for conns, rate in loads:
            for tree in trees:
                got.setdefault((tree, f"{conns}@{rate}"), []).append(
                    one(tree, conns, rate, a.seconds))
                m, c = got[(tree, f"{conns}@{rate}")][-1]
                print(f"  round {i} {conns}@{rate} {tree}: {m:,.0f} msgs/s CPU {c:.1f}%",
                      file=sys.stderr, flush=True)
    print(f"medians of {a.rounds} alternating rounds, {a.seconds:g} s windows; load average "
          f"at the start {load_at_start}" + ("; NOT QUIET" if a.busy_ok else ""))
    for (tree, load), runs in got.items():
        m, c = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"{load:<10} {tree:<30} {m:>9,.0f} msgs/s  CPU {c:5.1f}%  "
              f"{c / 100 * 1e6 / m if m else float('inf'):6.2f} µs/msg  "
              f"(runs: {', '.join(f'{r[1]:.1f}%' for r in runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
