"""Benchmark: the SSE receive path without sockets: a round of C connections' reads, each
holding E events (``id:`` + ``data:`` with a stamped JSON body, as tests/sse_chat.py sends
them), decoded in place (harness.protocols.sse.stream: chunked or not) and parsed into
stamped deliveries (harness.protocols.sse.events), as a worker does once per round.

    python tests/bench/sse_parse.py [--conns 100] [--events 20] [--size 100] [--rounds 200]

Prints events per second (and µs per event) for the plain and the chunked stream, and the
same rounds cut over a single read each (one event per read: the worst case). Figures on a
shared machine are not quiet-machine figures.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.protocols.sse.events import parse_round
from harness.protocols.sse.stream import Streams
from harness.wire import stamp

KEY = 99


def events(n: int, size: int, first: int) -> list[bytes]:
    st = stamp.make(np.arange(n) % 7, np.arange(n, dtype=np.uint32),
                    np.zeros(n, dtype=np.uint16), 0, 0, np.arange(n) + 10**9, KEY)
    raw = stamp.to_bytes(st, True)
    pad = max(size - 80, 0)
    return [b'id: %d\ndata: {"stamp":"%s","text":"%s"}\n\n' % (first + k, bytes(raw[k]),
                                                                b"x" * pad)
            for k in range(n)]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def reads(conns: int, per_read: int, evs: list[bytes], chunked: bool) -> list[bytes]:
    """Each connection's read: ``per_read`` events (each its own chunk when chunked)."""
    body = [chunk(e) if chunked else e for e in evs]
    return [b"".join(body[:per_read]) for _ in range(conns)]


def one_round(st: Streams, buf: bytearray, data: list[bytes]) -> int:
    """One round as the transport and the protocol do it: every read cut, then one parse."""
    off, seg_conn, seg_end, seg_t = 0, [], [], []
    for i, r in enumerate(data):
        buf[off:off + len(r)] = r
        cut, _end, _ok = st.cut(buf, i, off, off + len(r))
        seg_conn.append(i)
        seg_end.append(cut)
        seg_t.append(1)
        off = cut
    p = parse_round(buf, seg_conn, seg_end, seg_t, KEY)
    assert p.ok.all()
    return len(p.ok)


def measure(conns: int, per_read: int, size: int, rounds: int, chunked: bool) -> float:
    st = Streams(conns, 1 << 20)
    for i in range(conns):
        st.open(i, chunked)
    data = reads(conns, per_read, events(per_read, size, 1), chunked)
    buf = bytearray(sum(len(r) for r in data) + 1024)
    n = one_round(st, buf, data)  # warm
    t0 = time.perf_counter()
    for _ in range(rounds):
        one_round(st, buf, data)
    return n * rounds / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--events", type=int, default=20, help="events per read")
    ap.add_argument("--size", type=int, default=100, help="bytes of each event's JSON")
    ap.add_argument("--rounds", type=int, default=200)
    a = ap.parse_args()
    print(f"{a.conns} connections per round, {a.size}-byte JSON events")
    for per_read in (a.events, 1):
        for chunked in (False, True):
            rate = measure(a.conns, per_read, a.size, a.rounds, chunked)
            kind = "chunked" if chunked else "plain"
            print(f"  {per_read:3d} events/read, {kind:7s}: {rate:12,.0f} events/s "
                  f"({1e6 / rate:.2f} µs/event)")


if __name__ == "__main__":
    main()
