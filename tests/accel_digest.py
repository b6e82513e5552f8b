"""The hot modules' results on fixed, seeded inputs, as one JSON line: the differential test
(tests/test_accel.py) runs this under the compiled build and under ``HARNESS_PURE=1`` and
expects the same line, byte for byte.

    python -m tests.accel_digest [--seed 7]

Covered: histograms (record, record_list, record_one, merge, percentiles, out-of-range
values), stamp check words, the outbound builders (numpy, closed- and open-loop small
rounds), the inbound parsers (numpy and small rounds, good and mangled frames), and the
echo ledger (in order, gaps, duplicates). Each value is turned into plain JSON (bytes as
a sha256) so that nothing depends on which build made an object.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any

import numpy as np
import orjson

from harness import accel
from harness.core.histogram import Histogram
from harness.core.ledger import EchoLedger
from harness.wire import framing as framing_mod
from harness.wire import stamp
from harness.wire.batch import Outbound
from harness.wire.inbound import Inbound
from workloads.base import Kind

SIZE = 64
KEY = 0x5EED


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(v)).hexdigest()[:16]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def histograms(rng: np.random.Generator) -> dict[str, Any]:
    a, b = Histogram(), Histogram()
    vals = rng.integers(1, 10**9, 5000)
    a.record(vals)
    a.record_list(rng.integers(1, 10**6, 37).tolist())
    for v in rng.integers(1, 10**4, 11).tolist():
        a.record_one(v)
    b.record(np.array([0, 1, 2**40, 2**62], dtype=np.int64))
    b.record(rng.integers(1, 1000, 300))
    m = a.copy().merge(b)
    qs = [0, 50, 90, 99, 99.9, 100]
    return {"a": [len(a), a.percentiles(qs), a.mean()], "b": b.to_dict(),
            "m": [len(m), m.percentiles(qs), np.flatnonzero(m.counts).tolist()[:50]]}


def builders(rng: np.random.Generator) -> tuple[dict[str, Any], bytes]:
    fr = framing_mod.get("len32")
    out = Outbound(fr, [Kind("msg", 1.0, SIZE)], [b"x" * SIZE], KEY, 3, 11)
    gid = np.repeat(np.arange(20, dtype=np.int64), 3)
    t = rng.integers(10**15, 10**16, len(gid))
    data, ends, kinds = out.build(gid, 1000, t, rng.integers(0, 5000, len(gid)))
    whole = bytes(data)
    few, bounds, n = out.build_few([5, 6, 7], [1, 2, 1], 77, 123456789012345)
    few_b = bytes(few)
    at, abounds, an = out.build_few_at([8, 9], [2, 1], 90, [10**15, 10**15 + 7, 10**15 + 99],
                                       [0, 12, 4095])
    return ({"build": [whole, ends, kinds], "few": [few_b, bounds, n],
             "few_at": [bytes(at), abounds, an]}, whole + few_b)


def parsers(stream: bytes) -> dict[str, Any]:
    fr = framing_mod.get("len32")
    inb = Inbound(fr, SIZE, 1 << 20, KEY)
    buf = bytearray(stream)
    n = len(buf) // SIZE
    seg_end = [SIZE * (k + 1) for k in range(n)]
    seg_conn = [k % 7 for k in range(n)]
    seg_t = [10**16 + k for k in range(n)]
    p = inb.parse(buf, seg_conn, seg_end, seg_t, None)
    gids = [0, 0, 0, 1]  # the senders of the first four frames, on connections 0-3
    few = inb.take_few(buf, seg_conn[:4], seg_end[:4], seg_t[:4], 3, gids)
    bad = bytearray(buf)
    bad[SIZE * 2 + 9] ^= 0xFF  # a mangled stamp: its check fails
    bad[SIZE * 5:SIZE * 5 + 4] = b"\0\0\0\x10"  # a foreign length prefix
    q = inb.parse(bad, seg_conn, seg_end, seg_t, None)
    few_bad = inb.take_few(bad, seg_conn[:4], seg_end[:4], seg_t[:4], 3, gids)
    return {"p": [p.conn, p.t, p.ok, p.flen, p.bad_conns, p.st.tolist()],
            "few": None if few is None else list(few),
            "q": [q.conn, q.ok, q.bad_conns], "few_bad": few_bad is None}


def ledgers(rng: np.random.Generator) -> dict[str, Any]:
    led = EchoLedger()
    led.start(100)
    seqs = np.arange(100, 400, dtype=np.int64)
    rng.shuffle(seqs)
    led.record(seqs[:200])
    led.record(seqs[150:250])  # 50 duplicates
    led.record_few([int(s) for s in seqs[260:270]] + [int(seqs[0])])
    return {"answered": led.answered(400), "finish": led.finish(400)}


def digest(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    built, stream = builders(rng)
    words = rng.integers(0, 2**32, (64, stamp.WORDS), dtype=np.uint64).astype(np.uint32)
    return {"hist": histograms(rng), "out": built, "in": parsers(stream),
            "check": stamp.check_words(words, KEY), "ledger": ledgers(rng)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    out = {"build": accel.describe(), "digest": _plain(digest(args.seed))}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
