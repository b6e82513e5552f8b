"""Probe: does SO_TIMESTAMPNS stamp a TCP read with the reply's arrival, not the read?

    python tests/bench/rx_timestamps.py [--trials 20]

One connection to tests/bench/echo.c (started pinned to CPU 0). Each trial sends a
64-byte message, leaves the reply unread for 5 ms (odd trials send a second message
3 ms into that wait), then reads with ``recvmsg_into`` and prints the kernel's stamp
and the read time, each minus the send time. The stamp is CLOCK_REALTIME. It is put on
``time.monotonic_ns()`` by an offset taken between two monotonic reads (realtime minus
their midpoint). It also times an empty ``recv_into`` against an empty
``recvmsg_into`` (EAGAIN).

Not a test (pytest does not collect it): a tool that prints figures (docs/hotpath.md).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import struct
import sys
import tempfile
import time
import timeit
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.wire.hot import real_offset_ns  # noqa: E402
from tests.bench.peers import Server, build_echo  # noqa: E402

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # (Linux)


def kernel_stamp(anc: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec * 1_000_000_000 + nsec
    return None


def trial(s: socket.socket, buf: bytearray, two: bool) -> tuple[int, float | None, float]:
    """Bytes read, kernel stamp - send (µs, monotonic), read - send (µs)."""
    off = real_offset_ns()
    sent = time.monotonic_ns()
    s.send(b"x" * 64)
    time.sleep(0.005)
    if two:  # a second reply arrives 3 ms later: which one stamps the read?
        s.send(b"y" * 64)
        time.sleep(0.003)
    read_at = time.monotonic_ns()
    n, anc, _flags, _addr = s.recvmsg_into([buf], socket.CMSG_SPACE(16))
    k = kernel_stamp(anc)
    return n, None if k is None else (k - off - sent) / 1e3, (read_at - sent) / 1e3


def empty_reads(s: socket.socket, buf: bytearray) -> tuple[float, float]:
    """µs of an empty recv_into and an empty recvmsg_into (both raise EAGAIN)."""
    s.setblocking(False)

    def rv() -> None:
        with contextlib.suppress(BlockingIOError):
            s.recv_into(buf)

    def rm() -> None:
        with contextlib.suppress(BlockingIOError):
            s.recvmsg_into([buf], socket.CMSG_SPACE(16))

    return tuple(min(timeit.repeat(f, number=20000, repeat=5)) / 20000 * 1e6  # type: ignore
                 for f in (rv, rm))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rx-ts-"))
    try:
        with Server(build_echo(folder), 120) as srv:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            buf = bytearray(65536)
            for k in range(args.trials):
                n, kern, read = trial(s, buf, bool(k % 2))
                shown = "none" if kern is None else f"{kern:9.1f}"
                print(f"{'two replies' if k % 2 else 'one reply  '} {n:4} bytes: kernel stamp "
                      f"- send {shown} us, read - send {read:9.1f} us")
            rv, rm = empty_reads(s, buf)
            print(f"empty recv_into {rv:.2f} us, empty recvmsg_into {rm:.2f} us")
            s.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
