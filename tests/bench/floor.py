"""The floor of a Python client: the least a Python process can do per echoed message.

    python tests/bench/floor.py PORT CONNS (--inflight K | --rate R) [--seconds 4]
                                [--stamped]

A bare ``select.epoll`` loop over non-blocking sockets to one echo server: ``recv_into`` one
buffer and ``send`` 64-byte messages; closed loop (K messages outstanding per connection)
or open loop (R msgs/s per connection, every connection's phase on the grid harness would
use, one ``timerfd``-free wake per instant through the epoll timeout). No stamps, no clock
read per ``recv``, no histogram, no ledger: what harness adds on top of this is its price
for exact figures. ``--stamped`` (closed loop, 1 in flight) adds the least of that work in
plain Python, fused into the loop: each message carries harness's binary stamp (built with
``struct.pack_into``, its check computed), each reply's length prefix and check are
verified, and its latency goes into a harness.core.histogram.Histogram; no ledger, pacing or
per-second series. Prints one JSON line: msgs/s (replies, 64 bytes each) and the process's
CPU % over the window. tests/bench/peers.py runs it beside harness and tcpkali, so the
ratios say how much of a gap is Python's own floor on this machine (issue 12).

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path

SIZE = 64
SEC = 1_000_000_000
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # harness's grid, stamp, histogram


def connect(port: int, conns: int) -> list[socket.socket]:
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    return socks


def closed(socks: list[socket.socket], inflight: int, seconds: float, prime: bool) -> int:
    """Each connection keeps ``inflight`` messages outstanding (sent first when ``prime``);
    replies counted by bytes, each answered at once by as many new messages."""
    ep = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    msgs = [b"x" * SIZE * k for k in range(inflight + 1)]
    left = dict.fromkeys(by_fd, 0)  # bytes of a partial reply, per connection
    buf = memoryview(bytearray(1 << 20))
    if prime:
        for s in socks:
            s.send(msgs[inflight])
    got = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for fd, _ev in ep.poll(0.05):
            n = by_fd[fd].recv_into(buf) + left[fd]
            k, left[fd] = divmod(n, SIZE)
            got += k
            if k:
                by_fd[fd].send(msgs[k] if k <= inflight else msgs[1] * k)
    ep.close()
    return got


def stamped(socks: list[socket.socket], seconds: float, prime: bool) -> int:
    """Closed loop, 1 in flight, every message stamped and every reply checked and timed
    (``--stamped``); a bad reply is not counted."""
    from harness.core.histogram import Histogram
    from harness.wire import stamp

    words, m32, key = struct.Struct(f"<{stamp.WORDS}I"), 0xFFFFFFFF, 12345
    w0, w1, w2, w3, w4, w5 = stamp.WEIGHTS_INT
    ep = select.epoll()
    by_fd = {s.fileno(): (g, s) for g, s in enumerate(socks)}
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    buf, out = bytearray(1 << 16), bytearray(SIZE)
    out[:4] = (SIZE - 4).to_bytes(4, "big")
    hist, mono, seq = Histogram(), time.monotonic_ns, 0

    def send(s: socket.socket, g: int) -> None:
        nonlocal seq
        t = mono()
        lo, hi = t & m32, t >> 32
        words.pack_into(out, 4, (g * w0 + seq * w1 + lo * w4 + hi * w5 + key) & m32, g,
                        seq & m32, 0, 0, lo, hi)
        s.send(out)
        seq += 1

    if prime:
        for g, s in enumerate(socks):
            send(s, g)
    got, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        answered = []
        for fd, _ev in ep.poll(0.05):
            g, s = by_fd[fd]
            n = s.recv_into(buf)
            t = mono()
            if n != SIZE or int.from_bytes(buf[:4], "big") != SIZE - 4:
                continue
            check, gid, sq, kw, d, lo, hi = words.unpack_from(buf, 4)
            if (gid * w0 + sq * w1 + kw * w2 + d * w3 + lo * w4 + hi * w5 + key) & m32 == check:
                hist.record_one(t - (lo | hi << 32))
                got += 1
            answered.append((s, g))
        for s, g in answered:
            send(s, g)
    ep.close()
    return got


def opened(socks: list[socket.socket], rate: float, seconds: float) -> int:
    """Each connection sends one message every 1/rate s from a random phase on the grid;
    every reply is read as it comes."""
    from harness.worker.schedule import phase_grid  # the grid harness would use

    period, grid = int(SEC / rate), phase_grid(len(socks), rate)
    slots = max(period // grid, 1)
    by_slot: list[list[socket.socket]] = [[] for _ in range(slots)]
    for i, s in enumerate(socks):
        by_slot[(i * 7919) % slots].append(s)
    ep = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    buf = memoryview(bytearray(1 << 20))
    msg = b"x" * SIZE
    got, left = 0, dict.fromkeys(by_fd, 0)
    t0 = time.monotonic_ns()
    end, k = t0 + int(seconds * SEC), 0  # k: instants sent so far
    while True:
        now = time.monotonic_ns()
        if now >= end:
            break
        while t0 + k * grid <= now:
            for s in by_slot[k % slots]:
                s.send(msg)
            k += 1
        wait = (t0 + k * grid - time.monotonic_ns()) / SEC
        for fd, _ev in ep.poll(max(wait, 0)):
            n = by_fd[fd].recv_into(buf) + left[fd]
            c, left[fd] = divmod(n, SIZE)
            got += c
    ep.close()
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("conns", type=int)
    ap.add_argument("--inflight", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--stamped", action="store_true", help="closed loop 1 in flight, stamped")
    args = ap.parse_args()
    socks = connect(args.port, args.conns)
    if args.stamped:
        def run(seconds: float, prime: bool) -> int:
            return stamped(socks, seconds, prime)
    elif args.rate > 0:
        def run(seconds: float, prime: bool) -> int:
            return opened(socks, args.rate, seconds)
    else:
        def run(seconds: float, prime: bool) -> int:
            return closed(socks, max(args.inflight, 1), seconds, prime)
    run(args.warmup, True)
    c0, t0 = os.times(), time.monotonic()
    got = run(args.seconds, False)
    c1, wall = os.times(), time.monotonic() - t0
    user, system = (c1.user - c0.user) / wall * 100, (c1.system - c0.system) / wall * 100
    print(json.dumps({"msgs_s": got / wall, "cpu_pct": user + system, "user_pct": user,
                      "sys_pct": system}), flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
