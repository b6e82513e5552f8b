"""Protocols: what the bytes mean, i.e. framing plus matching. A protocol cuts each
connection's received bytes into whole frames (:meth:`cut`, once per read), turns a round
of frames into arrays (:meth:`parse`, once per round) and builds the round's requests
(:meth:`build`, once per round). Nothing here is called once per frame.

* :class:`Stamped`: newline, len16 or len32 framing; every reply carries the stamp of the
  message it answers, and is matched by it.
* :class:`InOrder`: the same framings, replies carry no stamp: the k-th reply on a
  connection answers its k-th request. The stamps of the requests sent wait in a
  per-connection FIFO, and a reply takes the oldest one; downstream nothing differs.

Sizes are bytes; times ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from harness.wire import hot, stamp
from harness.wire.batch import Outbound
from harness.wire.framing import FrameError, Framing
from harness.wire.inbound import Inbound, Parsed, frame_ends

# A stamp as one opaque record: gathering and scattering whole records through this view is
# several times faster than through the structured dtype (field by field).
_RECORD = np.dtype(f"V{stamp.BIN_DTYPE.itemsize}")


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed in pure modules
class Stamped:
    """Frames matched by their stamp (echoes, broadcasts, replies from other nodes)."""

    def __init__(self, framing: Framing, out: Outbound, fixed: int | None, max_frame: int,
                 key: int) -> None:
        self.framing = framing
        self.out = out
        self.max_frame = max_frame
        self.fixed = fixed  # bytes of every frame (length-prefixed, one size), else None
        self.fixed_hdr = (fixed - framing.header).to_bytes(framing.header, "big") \
            if fixed else b""
        self.walks = not fixed and framing.header > 0  # frame starts collected by cut()
        # a whole reply cut lately (in-order protocols learn one; empty: none), its code
        # and copies of it: a read equal to copies of it is that many replies (transport)
        self.tmpl, self.tmpl_code, self.rep = b"", 0, memoryview(b"")
        self.round_codes: list[int] = []  # per reply cut this round (in-order protocols)
        self.inbound = Inbound(framing, fixed, max_frame, key)
        out.key = key

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None,
            broken: list[int]) -> tuple[int, int]:
        """Where the whole frames of ``buf[start:end]`` (connection ``i``'s bytes this read)
        stop, and where its bytes end. A stream that breaks (a prefix that is not ours, a
        frame over max-frame) keeps the whole frames before the break and joins ``broken``:
        those frames count, then the connection closes (one protocol error; there is no way
        to resync)."""
        fixed = self.fixed
        if fixed:
            cut = start + (end - start) // fixed * fixed
            hdr = self.framing.header
            if end - cut >= hdr and buf[cut:cut + hdr] != self.fixed_hdr:
                broken.append(i)
                return cut, cut
            return cut, end
        if walk is None:  # newline
            cut = buf.rfind(b"\n", start, end) + 1 or start
            if end - cut > self.max_frame:
                broken.append(i)
                return cut, cut
            return cut, end
        try:
            starts, cut = self.framing.cut(buf, start, end, self.max_frame)
        except FrameError as exc:
            walk.extend(exc.starts)
            broken.append(i)
            return exc.pos, exc.pos
        walk.extend(starts)
        return cut, end

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        """A round of whole frames as arrays (``seg_*``: per read, its connection, end
        offset in ``buf`` and receive time)."""
        return self.inbound.parse(buf, seg_conn, seg_end, seg_t, walk)

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """The round's messages (``gid``: one entry per message; ``idx``/``counts``: local
        connections and messages each): bytes, each message's end, each one's kind."""
        return self.out.build(gid, seq0, tint, delay)

    def at_eof(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None
               ) -> int:
        """Connection ``i`` closed with ``buf[start:end]`` pending: where the frames that the
        close completes end (``start``: none; framed messages are never ended by a close)."""
        return start

    def forget(self, i: int) -> None:
        """Connection ``i`` closed."""

    def add_lags(self, idx: np.ndarray, counts: np.ndarray, lags: list[int]) -> None:
        """Each send's lag behind its round's clock read, for stamps kept here (InOrder);
        stamped frames carry theirs in their bytes (harness.wire.restamp)."""


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed in pure modules
class InOrder(Stamped):
    """FIFO matching: replies carry no stamp (HTTP/1.1, RESP, memcached, a fixed reply).

    Requests are the same stamped frames (a server may ignore their content); their stamps
    queue per connection in a ring (``ring[i, pos % cap]``) that doubles when full. A reply
    with no request waiting is a protocol error (``ok`` false). A workload's ``hello``
    frames queue nothing: a reply to one would answer the first request (protocols with a
    handshake, HTTP/redis, are to queue it as a request of their own). The connections
    that got such a reply are the round's ``unsolicited``: the worker counts one protocol
    error for each and closes it."""

    def __init__(self, framing: Framing, out: Outbound, max_frame: int, key: int, n: int,
                 worker: int) -> None:
        super().__init__(framing, out, None, max_frame, key)
        self.walks = framing.header > 0
        self.worker = worker
        self.key = key
        self.ring = np.zeros((n, 4), dtype=stamp.BIN_DTYPE)
        self.head = np.zeros(n, dtype=np.int64)  # requests answered (or forgotten)
        self.tail = np.zeros(n, dtype=np.int64)  # requests sent

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        data, ends, kinds = self.out.build(gid, seq0, tint, delay)
        st = stamp.make(gid, np.arange(seq0, seq0 + len(gid), dtype=np.uint32), kinds,
                        self.worker, delay, tint, self.key)
        self._push(idx, counts, st)
        return data, ends, kinds

    def _push(self, idx: np.ndarray, counts: np.ndarray, st: np.ndarray) -> None:
        if len(idx) == len(st) and len(idx) and counts.max() == 1:
            # one request per connection (idx is unique): no ranks
            tail = self.tail[idx]
            need = int((tail - self.head[idx]).max()) + 1
            if need > self.ring.shape[1]:
                self._grow(need)
            self.ring.view(_RECORD)[idx, tail % self.ring.shape[1]] = st.view(_RECORD)
            self.tail[idx] = tail + 1
            return
        need = int((self.tail[idx] - self.head[idx] + counts).max())
        if need > self.ring.shape[1]:
            self._grow(need)
        cap = self.ring.shape[1]
        conn = idx.repeat(counts)
        rank = np.arange(len(conn)) - np.repeat(np.cumsum(counts) - counts, counts)
        self.ring.view(_RECORD)[conn, (self.tail[conn] + rank) % cap] = st.view(_RECORD)
        self.tail[idx] += counts

    def push_few(self, conns: list[int], counts: list[int], times: list[int], gids: list[int],
                 seq0: int) -> int:
        """:meth:`build`'s stamps for the closed loop's early sends (one kind, no delay),
        queued without arrays (harness.wire.hot.ring_push: in C when built): ``conns[k]``
        sent ``counts[k]`` at ``times[k]``. How many, or -1 (nothing queued) when the ring
        must grow first (:meth:`build` grows it)."""
        return hot.ring_push(self.ring, self.head, self.tail, conns, counts, times, gids,
                             seq0, self.worker, self.key)

    def pop_few(self, conns: list[int]) -> tuple[list[int], list[int], list[int]] | None:
        """:meth:`_pop` for a small round, one entry of ``conns`` per reply, in lists
        (harness.wire.hot.ring_pop): each one's seq, intended time (ns) and delay (µs).
        None, with nothing popped, when a reply has no request waiting."""
        return hot.ring_pop(self.ring, self.head, self.tail, conns)

    def add_lags(self, idx: np.ndarray, counts: np.ndarray, lags: list[int]) -> None:
        """The round's requests just went out, connection ``idx[k]``'s ``counts[k]`` of
        them (the last it queued) ``lags[k]`` µs after the round's clock read: their
        stamps' delays grow by it (saturating), so latency runs from each send."""
        lag = np.asarray(lags, dtype=np.int64)
        if len(lag) != len(idx) or not lag.any():
            return
        conn = idx.repeat(counts)
        back = np.cumsum(counts).repeat(counts) - np.arange(len(conn))  # 1: the last queued
        pos = (self.tail[conn] - back) % self.ring.shape[1]
        delay = self.ring["delay"]
        delay[conn, pos] = np.minimum(delay[conn, pos].astype(np.int64) + lag.repeat(counts),
                                      stamp.MAX_DELAY_US)

    def _grow(self, need: int) -> None:
        """Double the ring until ``need`` fits, keeping each queue's order."""
        n, cap = self.ring.shape
        new_cap = cap
        while new_cap < need:
            new_cap *= 2
        rows = np.arange(n)[:, None]
        pos = self.head[:, None] + np.arange(cap)
        ring = np.zeros((n, new_cap), dtype=self.ring.dtype)
        ring[rows, pos % new_cap] = self.ring[rows, pos % cap]
        self.ring = ring

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        total = seg_end[-1]
        if walk is None:  # newline: every line is a frame
            a = np.frombuffer(buf, dtype=np.uint8, count=total)
            fend = np.flatnonzero(a == 10) + 1
            fstart = np.concatenate(([0], fend[:-1]))
        else:
            fstart = np.asarray(walk, dtype=np.int64)
            fend = frame_ends(fstart, total)
        seg = np.searchsorted(np.asarray(seg_end, dtype=np.int64), fstart, side="right")
        conn = np.asarray(seg_conn, dtype=np.int64)[seg]
        t = np.asarray(seg_t, dtype=np.int64)[seg]
        length = fend - fstart
        st, ok = self._pop(conn, len(conn) == len(seg_conn))  # (one reply a read?)
        bad = np.unique(conn[length > self.max_frame]).tolist() if walk is None else []
        extra = np.unique(conn[~ok]).tolist() if not ok.all() else []
        return Parsed(conn, t, st, ok, length, bad, extra)

    def _pop(self, conn: np.ndarray, few: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The stamps the round's replies answer, oldest first per connection. ``few``: as
        many replies as reads, so likely one per connection (checked here)."""
        head = self.head
        if few and np.bincount(conn, minlength=len(head)).max() <= 1:
            # one reply per connection: no ranks
            h = head[conn]
            ok = self.tail[conn] > h
            st = np.zeros(len(conn), dtype=stamp.BIN_DTYPE)
            took = conn[ok]
            st.view(_RECORD)[ok] = self.ring.view(_RECORD)[took, h[ok] % self.ring.shape[1]]
            head[took] += 1
            return st, ok
        order = np.argsort(conn, kind="stable")
        c = conn[order]
        starts = np.empty(len(c), dtype=bool)
        starts[:1] = True
        np.not_equal(c[1:], c[:-1], out=starts[1:])
        first = np.flatnonzero(starts)
        rank_sorted = np.arange(len(c)) - np.repeat(first, np.diff(first, append=len(c)))
        rank = np.empty_like(rank_sorted)
        rank[order] = rank_sorted
        ok = rank < self.tail[conn] - self.head[conn]
        st = np.zeros(len(conn), dtype=stamp.BIN_DTYPE)
        took = conn[ok]
        st.view(_RECORD)[ok] = self.ring.view(_RECORD)[
            took, (self.head[took] + rank[ok]) % self.ring.shape[1]]
        head += np.bincount(conn[ok], minlength=len(head))
        return st, ok

    def forget(self, i: int) -> None:
        self.head[i] = self.tail[i]

    def waiting(self, i: int) -> int:
        """Requests connection ``i`` sent that no reply has answered (nor forgotten)."""
        return int(self.tail[i] - self.head[i])


def pooled(kinds: np.ndarray, rng: np.random.Generator, pools: tuple[list[bytes], np.ndarray,
           np.ndarray, np.ndarray]) -> tuple[memoryview, np.ndarray]:
    """Each message's request bytes, picked (seeded) from its kind's pre-rendered pool, and
    where each ends: ``pools`` is (every rendering kind by kind, their lengths, each kind's
    pool size, each kind's first index)."""
    flat, lens, pool_len, base = pools
    pick = base[kinds] + (rng.random(len(kinds)) * pool_len[kinds]).astype(np.int64)
    data = b"".join([flat[j] for j in pick.tolist()])  # pre-rendered: no formatting here
    return memoryview(data), np.cumsum(lens[pick])


def protocol_for(matching: str, framing: Framing, out: Outbound, fixed: int | None,
                 max_frame: int, key: int, n: int, worker: int) -> Stamped:
    """The protocol of a workload's ``matching``: "stamp" or "order"."""
    if matching == "order":
        return InOrder(framing, out, max_frame, key, n, worker)
    return Stamped(framing, out, fixed, max_frame, key)
