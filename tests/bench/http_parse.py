"""Benchmark: harness's hand HTTP/1.1 response parser (harness/protocols/http/http1.py)
against httptools (llhttp, C) on one big in-memory response stream, read as the transport reads it.

The stream is ``--responses`` responses in a seeded mix shaped like the test servers'
answers: nginx-like ``Content-Length`` responses with small bodies, chunked ones, 204s and
404s, all with one Date (a server's heads repeat within a second); ``--distinct`` adds a
header unique to each response. It is fed in reads of ``--read`` bytes (the transport's
recv size is 256 KiB; a busy round reads less per socket). Each parser does what the
worker needs from it per read:

* hand: ``Http.cut`` (status codes, and the offsets where whole responses end, which the
  transport needs to keep a partial response for the next read) then ``Http.parse``'s
  array of codes; a partial response is copied and re-cut with the next read, as in
  ``Transport._keep``;
* httptools: one ``HttpResponseParser`` fed every read, with two callbacks
  (``on_headers_complete`` to take the status, ``on_message_complete`` to count). It gives
  no offsets: the batch design would have to count responses per connection instead of
  cutting frames.

Prints, per parser, the median of ``--repeat`` runs: MB/s and responses/s per second of
this process's CPU time (one core). Both must find the same number of responses and the same codes.

    python tests/bench/http_parse.py [--responses 200000] [--read 65536] [--repeat 5]
                                     [--distinct]

Not a test (pytest does not collect it).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.protocols.http.http1 import Http  # noqa: E402
from harness.wire import framing as framing_mod  # noqa: E402
from harness.wire.batch import Outbound  # noqa: E402
from workloads import Kind  # noqa: E402

HEAD = (b"HTTP/1.1 %d %s\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 18:00:00 GMT\r\n"
        b"Content-Type: application/json\r\n")


def response(rng: random.Random, distinct: bool = False) -> tuple[int, bytes]:
    code, data = _response(rng)
    if distinct:  # a header unique to each response: no head is ever seen twice
        data = data.replace(b"\r\n", b"\r\nX-Request-Id: %016x\r\n" % rng.getrandbits(64), 1)
    return code, data


def _response(rng: random.Random) -> tuple[int, bytes]:
    kind = rng.random()
    if kind < 0.70:
        body = b'{"id": %d, "name": "user %d"}' % (rng.randrange(1000), rng.randrange(1000))
        return 200, (HEAD % (200, b"OK") + b"Content-Length: %d\r\nConnection: keep-alive"
                     b"\r\n\r\n" % len(body) + body)
    if kind < 0.85:
        parts = [b"x" * rng.randrange(1, 200) for _ in range(rng.randrange(1, 4))]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
        return 200, HEAD % (200, b"OK") + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + \
            b"0\r\n\r\n"
    if kind < 0.92:
        return 204, HEAD % (204, b"No Content") + b"\r\n"
    return 404, HEAD % (404, b"Not Found") + b"Content-Length: 9\r\n\r\nnot found"


def make_stream(n: int, seed: int = 1, distinct: bool = False) -> tuple[bytes, Counter]:
    rng = random.Random(seed)
    codes: Counter = Counter()
    parts = []
    for _ in range(n):
        code, data = response(rng, distinct)
        codes[code] += 1
        parts.append(data)
    return b"".join(parts), codes


def reads(stream: bytes, size: int) -> list[bytes]:
    return [stream[i:i + size] for i in range(0, len(stream), size)]


def hand(chunks: list[bytes]) -> Counter:
    fr = framing_mod.get("len32")
    out = Outbound(fr, [Kind("get", 1.0, 64)], [b"x" * 64], 0, 0, 1)
    p = Http(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", fr, out, 1 << 20, 0, 1, 0)
    codes: Counter = Counter()
    pend = b""
    for c in chunks:
        buf = bytearray(pend + c) if pend else bytearray(c)
        walk: list[int] = []
        broken: list[int] = []
        cut, end = p.cut(buf, 0, 0, len(buf), walk, broken)
        assert not broken
        codes.update(p.round_codes)  # what Http.parse turns into an array
        p.round_codes.clear()
        pend = bytes(buf[cut:end])
    assert not pend
    return codes


def with_httptools(chunks: list[bytes]) -> Counter:
    import httptools
    codes: Counter = Counter()

    class Cb:
        status = 0

        def on_headers_complete(self) -> None:
            self.status = parser.get_status_code()

        def on_message_complete(self) -> None:
            codes[self.status] += 1

    parser = httptools.HttpResponseParser(Cb())
    for c in chunks:
        parser.feed_data(c)
    return codes


def measure(fn, chunks: list[bytes], repeat: int) -> tuple[float, Counter]:
    times = []
    got: Counter = Counter()
    for _ in range(repeat):
        t0 = time.process_time()  # this process's CPU: steadier than wall time on a
        got = fn(chunks)  # machine shared with other work
        times.append(time.process_time() - t0)
    return statistics.median(times), got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--responses", type=int, default=200_000)
    ap.add_argument("--read", type=int, default=65536, help="bytes per read")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--distinct", action="store_true",
                    help="a unique header in every response (the hand parser's worst case: "
                         "it remembers heads it has seen)")
    a = ap.parse_args()
    stream, want = make_stream(a.responses, distinct=a.distinct)
    chunks = reads(stream, a.read)
    mb = len(stream) / 1e6
    print(f"{a.responses} responses, {mb:.1f} MB, mean {len(stream) / a.responses:.0f} B, "
          f"reads of {a.read} B; median of {a.repeat}")
    parsers = [("hand (harness/protocols/http/http1.py)", hand)]
    try:
        import httptools
        parsers.append((f"httptools {httptools.__version__}", with_httptools))
    except ImportError:
        print("httptools not installed (pip install httptools): hand parser only")
    for name, fn in parsers:
        t, got = measure(fn, chunks, a.repeat)
        assert got == want, (name, got, want)
        print(f"{name:28} {mb / t:8.1f} MB/s {a.responses / t:12,.0f} responses/s")


if __name__ == "__main__":
    main()
