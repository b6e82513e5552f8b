"""Benchmark: the instructions (callgrind Ir) each piece of one worker round costs, for a
round of N messages (one per connection), open loop, 64-byte len32 frames.

    python tests/bench/round_ir.py [--sizes 3,10,50]

Each size runs this script under ``valgrind --tool=callgrind``, collecting only inside
``functools.reduce`` (``--toggle-collect``) and dumping after each call of it: each piece
runs ``--calls`` times in one ``reduce``, so a dump is that piece's cost, without start-up,
imports or the set-up between pieces. The worker is connected to tests/bench/echo.c
(started natively); the pieces are called directly on prepared rounds, so their cost does
not depend on the machine's load. Read it to choose between the plain-Python paths for
small rounds and the numpy paths (batch.SMALL_*, loops.PICK_FEW, pacing.FEW_ELEMENTS).

Not a test (pytest does not collect it): a tool for measuring changes to the hot loop.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from harness.core.result import Times  # noqa: E402
from harness.wire import batch  # noqa: E402
from tests.bench.peers import Server, build_echo  # noqa: E402
from tests.bench.worker_ir import SEC, connected_worker  # noqa: E402

CALLS = 50


def pieces(port: int, n: int) -> list[tuple[str, Callable[[], object]]]:
    """The round's pieces for ``n`` messages, each a call to repeat."""
    w = connected_worker(port, f"{n}@1000/2")
    now = time.monotonic_ns()
    w.times = Times(now - SEC, now - SEC, now + 100 * SEC)  # the stamps below are in it
    w.rec.begin(w.times, w.timeout_ns)
    w.pace.start(now, w.tp.alive)
    w.running = True
    w._start_measure()
    idx, cnt = np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    data, ends, _ = w.proto.build(w.gid[idx], idx, cnt, 0, now - 50_000, 10)
    w.rounds.buf[:len(data)] = bytes(data)
    buf, conns, bounds = w.rounds.buf, list(range(n)), ends.tolist()
    ts = [now + k for k in range(n)]
    w.pace.outstanding[:] = 1
    parsed = w.proto.parse(buf, conns, bounds, ts, None)
    small = getattr(batch, "SMALL_READ", batch.SMALL_ROUND)  # (older trees: one threshold)
    take = getattr(w.proto.inbound, "take_few", None)  # (older trees: parse_few)
    # (older trees: take_few without the reads' times, and one frame a read)
    timed = take is not None and "seg_t" in inspect.signature(take).parameters
    few = ((take(buf, conns, bounds, ts, w.index, w.gid_list) if timed else
            take(buf, conns, bounds, w.index, w.gid_list)) if take else
           w.proto.inbound.parse_few(buf, conns, bounds, ts)) if n <= small else None
    assert w.small is not None

    def due_now() -> int:  # every connection's first message due (and nothing else)
        w.pace.sched[:] = 0
        w.pace.wheel.seen = w.pace.wheel.base - 1
        w.pace.wheel.laggards = np.zeros(0, dtype=np.int64)
        return w.pace.sched_base + int(w.pace.phase.max()) + 1

    def send_numpy() -> None:
        t = due_now()
        picked = w.pace.pick(t, w.tp.alive, w.tp.blocked, True)
        assert picked is not None
        i, c = picked
        tint, delay, _ = w.pace.commit(i, c, t, True)
        w.proto.build(w.gid[i], i, c, w.seq, tint, delay)

    def send_python() -> None:
        t = due_now()
        picked = w.pace.pick(t, w.tp.alive, w.tp.blocked, True)
        assert picked is not None
        i, c = picked[0].tolist(), picked[1].tolist()
        tint, delay, _ = w.pace.commit_few(i, c, t, True)
        w.out.build_few_at([w.gid_list[k] for k in i], c, w.seq, tint, delay)

    def socket_loops() -> None:  # one send, then one recv, per connection (frames unused)
        w.tp.send_round(idx, bounds, data)
        time.sleep(0.002)
        sink, w.tp.sink = w.tp.sink, _NoFrames(w)  # (a compiled Worker's methods are fixed)
        w.tp.read_round(list(range(n)))
        w.tp.sink = sink

    out = [("read: frames (as configured)", lambda: w.frames(buf, conns, bounds, ts, None)),
           ("read: parse (numpy)", lambda: w.proto.parse(buf, conns, bounds, ts, None)),
           ("read: _account (numpy)", lambda: w._account(parsed, ts[-1]))]
    if few is not None:
        if take:
            out += [("read: take_few", lambda: take(buf, conns, bounds, ts, w.index, w.gid_list)
                     if timed else take(buf, conns, bounds, w.index, w.gid_list)),
                    ("read: _account_few", lambda: w._account_few(ts[-1], *few) if timed
                     else w._account_few(conns, ts, ts[-1], *few))]
        else:
            out += [("read: parse_few",
                     lambda: w.proto.inbound.parse_few(buf, conns, bounds, ts)),
                    ("read: _account_few", lambda: w._account_few(few))]
    return out + [("send: pick+commit+build (numpy)", send_numpy),
                  ("send: pick+commit_few+build_few_at", send_python),
                  ("send: next_send", lambda: w.pace.next_send(w.tp.alive, w.tp.blocked)),
                  ("socket loops: send_round+read_round", socket_loops)]


class _NoFrames:
    """The worker as the transport's sink, but the round's frames go nowhere."""

    def __init__(self, w: object) -> None:
        self.w = w

    def frames(self, *_a: object) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        return getattr(self.w, name)


def once(port: int, n: int, calls: int) -> None:
    labels = []
    for label, fn in pieces(port, n):
        fn()  # warm
        functools.reduce(lambda _a, _b, fn=fn: fn(), range(calls), None)  # measured
        labels.append(label)
    print(json.dumps(labels), flush=True)


def measure(exe: Path, n: int, calls: int, folder: Path) -> list[tuple[str, float]]:
    out = folder / f"cg.{n}"
    with Server(exe, 300) as srv:
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
               "--toggle-collect=functools_reduce", "--dump-after=functools_reduce",
               f"--callgrind-out-file={out}", sys.executable, __file__, "--once", str(n),
               "--port", str(srv.port), "--calls", str(calls)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    if proc.returncode:
        raise SystemExit(f"callgrind run failed: {proc.stderr[-2000:]}")
    labels = json.loads(proc.stdout.strip().splitlines()[-1])
    totals = []
    for f in sorted(folder.glob(f"cg.{n}.*"), key=lambda p: int(p.suffix[1:])):
        m = re.search(r"^(?:summary|totals): (\d+)", f.read_text(), re.M)
        if m and int(m.group(1)):
            totals.append(int(m.group(1)) / calls)
    return list(zip(labels, totals, strict=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="3,10,50")
    ap.add_argument("--calls", type=int, default=CALLS)
    ap.add_argument("--once", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.once:
        once(args.port, args.once, args.calls)
        return
    folder = Path(tempfile.mkdtemp(prefix="round-ir-"))
    try:
        exe = build_echo(folder)
        sizes = [int(x) for x in args.sizes.split(",")]
        table = {n: dict(measure(exe, n, args.calls, folder)) for n in sizes}
        labels = list(dict.fromkeys(k for t in table.values() for k in t))
        print(f"{'Ir per call':40}" + "".join(f"{f'N={n}':>12}" for n in sizes))
        for label in labels:
            print(f"{label:40}" + "".join(
                f"{table[n][label]:>12.0f}" if label in table[n] else f"{'-':>12}"
                for n in sizes))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
