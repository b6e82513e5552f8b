"""Chaos runs whose error counts by kind must equal the chaos server's fault log.

    PYTHONPATH=$PWD python tests/bench/chaos_counts.py [RUNS]   (default 20)

Each run: a ``chaos`` server (tests/servers.py) with seed k, framing len32 or newline in
turn, 16 connections x 120 messages, 4 in flight. Prints one line per run and a total;
exits 1 when any run's counts differ from the log.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.test_measure import chaos_matches, chaos_run


def main(runs: int) -> int:
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    exact = 0
    total = dict.fromkeys(("reset", "fin", "garbage", "oversize"), 0)
    for seed in range(1, runs + 1):
        framing = "len32" if seed % 2 else "newline"
        s, faults = chaos_run(folder, seed, framing)
        ok = chaos_matches(s, faults)
        exact += ok
        for k, v in faults.items():
            total[k] += v
        errs = {k: v for k, v in s["errors"].items() if v}
        print(f"seed {seed:2} {framing:7} log {faults} counted {errs} sent {s['sent']} "
              f"lost {s['lost']} {'exact' if ok else 'MISMATCH'}")
    print(f"{exact} of {runs} runs exact; faults in all: {total}")
    return 0 if exact == runs else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
