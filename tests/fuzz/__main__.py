"""``python -m tests.fuzz --cases 5000 --seed N``: run the fuzz and print the counts by
outcome and the distinct failures (command, kind, exception type and last frame). Exit 0
when no case failed, 1 otherwise."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.fuzz.runner import Report, fuzz


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz")
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", type=int, action="append", help="run only this case (repeat)")
    ap.add_argument("--processes", type=int, default=2, choices=(1, 2))
    ap.add_argument("--subprocess", action="store_true",
                    help="run every case as a CLI subprocess (slow)")
    ap.add_argument("--base", type=Path, default=None, metavar="DIR",
                    help="the base run folder's parent: made there once, then reused (a case "
                         "replays exactly only from the same base run)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case's argv")
    args = ap.parse_args(argv)
    started = time.monotonic()
    report = fuzz(args.cases, args.seed, args.only, args.processes, args.subprocess, args.base)
    if args.verbose:
        for o in report.outcomes:
            print(f"#{o.index} {o.surface} {o.kind} {o.seconds}s {o.signature} {o.message}")
    show(report, args.seed, time.monotonic() - started)
    return 1 if report.failures() else 0


def show(report: Report, seed: int, seconds: float) -> None:
    n = len(report.outcomes)
    print(f"{n} cases, seed {seed}, {seconds:.0f} s")
    counts = report.counts()
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    surfaces: dict[str, int] = {}
    for o in report.outcomes:
        surfaces[o.surface] = surfaces.get(o.surface, 0) + 1
    print("surfaces: " + ", ".join(f"{k} {v}" for k, v in sorted(surfaces.items())))
    failures = report.failures()
    groups = report.distinct()
    print(f"failures: {len(failures)} in {len(groups)} distinct")
    for (command, kind, signature), group in groups:
        example = group[0]
        argv = " ".join(repr(a) if " " in a or not a.isprintable() else a
                        for a in example.argv)
        print(f"- {len(group)} x {command}: {kind}: {signature}\n"
              f"    e.g. #{example.index}: {example.message[:160]!r}\n"
              f"    argv: {argv[:300]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
