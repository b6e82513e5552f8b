"""Request/response protocols whose requests come from pre-rendered pools and whose replies
are matched in order: the part redis RESP (:mod:`harness.protocols.redis.resp`) and memcached text
(:mod:`harness.protocols.memcached.memcache`) share.

Requests are picked (seeded) from the plan's pools, one pool per kind (rendered at plan time
by :mod:`harness.protocols.kvcmds`); their stamps wait in :class:`~harness.wire.protocol.InOrder`'s
per-connection FIFO, so the k-th reply on a connection answers its k-th request. A subclass
supplies ``_reply(buf, pos, end)``: the end of the whole reply at ``pos`` and its code, or
None while it is not whole, or raises :class:`BadReply` where the stream breaks the
protocol (a protocol error on that connection; the whole replies before it count). Every
reply gets a code: 0 ok, 1 a miss (information, not an error), 2 and up an error reply,
named by ``names[code]`` (``redis_ERR``, ``mc_SERVER_ERROR``; at most :data:`MAX_NAMES`
names, then ``<prefix>other``). A reply (or a reply still coming) over ``--max-frame`` bytes
breaks the stream, so memory stays bounded.

The hot path: a run of replies equal to the last short reply parsed (``+PONG``, ``+OK``,
``STORED``, one GET value) is recognised by one bytes comparison, exactly (both protocols
are read left to right, so bytes equal to a whole reply parse as that reply); any other
reply is parsed by hand.

Sizes are bytes; times ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import re

import numpy as np

from harness.wire import stamp
from harness.wire.batch import Outbound
from harness.wire.framing import Framing
from harness.wire.inbound import Parsed
from harness.wire.protocol import InOrder, pooled

OK, MISS = 0, 1  # reply codes; error replies take 2 and up
MAX_NAMES = 16  # most distinct error-reply kinds per connection set (then "<prefix>other")
MAX_TEMPLATE = 4096  # longest reply the fast path remembers
_WORD = re.compile(rb"[A-Z][A-Z0-9_]{0,31}")


class BadReply(Exception):
    """The stream broke the protocol at this point."""


class Replies(InOrder):
    """Pooled requests, in-order replies; ``codes`` holds the code of each reply of the last
    parsed round (in walk order), ``names`` each code's error kind."""

    prefix = "kv_"  # error kinds are prefix + the server's word (redis_ERR)

    def __init__(self, pools: list[tuple[bytes, ...]], framing: Framing, out: Outbound,
                 max_frame: int, key: int, n: int, worker: int) -> None:
        super().__init__(framing, out, max_frame, key, n, worker)
        self.flat = [r for pool in pools for r in pool]  # every rendering, kind by kind
        self.single = self.flat[0] if len(self.flat) == 1 else None
        self.lens = np.asarray([len(r) for r in self.flat], dtype=np.int64)
        self.pool_len = np.asarray([len(p) for p in pools], dtype=np.int64)
        self.base = np.cumsum(self.pool_len) - self.pool_len  # each kind's first in flat
        self.walks = True
        self.fixed = None
        self.round_codes: list[int] = []  # per reply cut this round, in walk order
        self.codes = np.zeros(0, dtype=np.int64)
        self.names = ["", f"{self.prefix}miss"]
        self.tmpl = b""  # the last short reply parsed, and its code
        self.tmpl_code = OK
        self.rep = memoryview(b"")  # tmpl repeated

    # ------------------------------------------------------------------ requests

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        n = len(gid)
        kinds = self.out.pick_kinds(gid)
        st = stamp.make(gid, np.arange(seq0, seq0 + n, dtype=np.uint32), kinds,
                        self.worker, delay, tint, self.key)
        self._push(idx, counts, st)
        if self.single is not None:
            ends = np.arange(1, n + 1, dtype=np.int64) * len(self.single)
            return memoryview(self.single * n), ends, kinds
        data, ends = pooled(kinds, self.out.rng, (self.flat, self.lens, self.pool_len, self.base))
        return data, ends, kinds

    # ------------------------------------------------------------------ replies

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None,
            broken: list[int]) -> tuple[int, int]:
        """Whole replies of ``buf[start:end]``: their starts go to ``walk``, their codes to
        the round's; returns where they stop and where the kept bytes end."""
        assert walk is not None
        codes = self.round_codes
        pos = start
        while pos < end:
            if self.tmpl and buf.startswith(self.tmpl, pos):
                size = len(self.tmpl)
                k = self._run(buf, pos, end)
                walk.extend(range(pos, pos + k * size, size))
                codes.extend([self.tmpl_code] * k)
                pos += k * size
                continue
            try:
                got = self._reply(buf, pos, end)
                if got is None and end - pos > self.max_frame or \
                        got is not None and got[0] - pos > self.max_frame:
                    raise BadReply
            except BadReply:
                broken.append(i)
                return pos, pos
            if got is None:
                break
            nxt, code = got
            walk.append(pos)
            codes.append(code)
            if nxt - pos <= MAX_TEMPLATE:  # (not the template: that took the fast path)
                self._learn(bytes(buf[pos:nxt]), code)
            pos = nxt
        return pos, end

    def _learn(self, reply: bytes, code: int) -> None:
        # a few copies at once for the transport's reads of pipelined replies (cheap: many
        # only of a short reply, as a mix may learn a new one at every reply)
        self.tmpl, self.tmpl_code = reply, code
        self.rep = memoryview(reply * max(1, min(16, 512 // len(reply))))

    def _run(self, buf: bytearray, pos: int, end: int) -> int:
        """How many copies of the template follow back to back at ``pos`` (at least one)."""
        size = len(self.tmpl)
        most = (end - pos) // size
        if most <= 1:
            return 1
        if len(self.rep) < most * size:
            self.rep = memoryview(self.tmpl * (2 * most))
        rep = self.rep
        if buf.startswith(rep[:most * size], pos):
            return most
        lo, hi = 1, most - 1  # lo copies match; more than hi do not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if buf.startswith(rep[:mid * size], pos):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _reply(self, buf: bytearray, pos: int, end: int) -> tuple[int, int] | None:
        """One reply at ``pos``: (its end, its code), or None when it is not whole yet."""
        raise NotImplementedError

    def code(self, word: bytes) -> int:
        """The code of an error reply whose server word is ``word`` (``ERR``): a name of
        upper-case letters, digits and ``_``, else ``other``; new names stop at MAX_NAMES."""
        name = self.prefix + (word.decode() if _WORD.fullmatch(word) else "other")
        try:
            return self.names.index(name)
        except ValueError:
            if len(self.names) >= MAX_NAMES + 2:
                name = self.prefix + "other"
                if name in self.names:
                    return self.names.index(name)
            self.names.append(name)
            return len(self.names) - 1

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        self.codes = np.asarray(self.round_codes, dtype=np.int64)
        self.round_codes.clear()
        return super().parse(buf, seg_conn, seg_end, seg_t, walk)

    def counted(self, ok: np.ndarray) -> list[tuple[str, int]]:
        """The last round's misses and error replies (of replies that answered a request),
        by kind."""
        codes = self.codes[ok]
        codes = codes[codes != OK]
        if not len(codes):
            return []
        got, count = np.unique(codes, return_counts=True)
        return [(self.names[c], n) for c, n in zip(got.tolist(), count.tolist(), strict=True)]


def int_at(buf: bytearray, a: int, b: int) -> int:
    """The decimal integer ``buf[a:b]`` (an optional minus sign, then 1 to 18 digits)."""
    s = bytes(buf[a:b])
    digits = s[1:] if s[:1] == b"-" else s
    if not digits.isdigit() or len(digits) > 18:
        raise BadReply
    return int(s)
