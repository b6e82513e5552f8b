"""Exact delivery accounting: which messages came back, how often, in which order.

A message is identified by (sending worker, seq); seq is dense from 0 in each worker, so an
echo ledger is one bitmap indexed by seq. Only messages *sent inside the measure window*
(seq in [lo, hi)) are accounted: a message never answered by the end of drain is lost, one
answered twice is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LIST_BATCH = 256  # up to this many seqs, min/max are cheaper on a list than in numpy


def mark_few(seqs: list[int], seen: np.ndarray, lo: int) -> int:
    """Mark each seq at or above ``lo`` in ``seen``: how many; -1, with nothing marked,
    when one is past its end. (harness._hot has the same in C: harness.wire.hot.)"""
    keep = [s for s in seqs if s >= lo]
    if keep and max(keep) >= len(seen):
        return -1
    for s in keep:
        seen[s] = True
    return len(keep)


class EchoLedger:
    """Each message is expected once, on the connection that sent it (all in one worker).
    ``mark``: :func:`mark_few` or its twin in C (the worker passes harness.wire.hot's)."""

    def __init__(self, mark: Callable[[list[int], np.ndarray, int], int] = mark_few) -> None:
        self.mark = mark
        self.seen = np.zeros(1 << 16, dtype=bool)
        self.lo = 1 << 62  # first seq of the measure window (set when it starts)
        self.receipts = 0  # replies to window messages, duplicates included
        self.gap = 0  # no window message below this seq is unanswered (answered())

    def start(self, lo: int) -> None:
        self.lo = lo

    def record(self, seq: np.ndarray) -> None:
        """Seqs of replies with a valid stamp from this worker (any order, any repeats)."""
        if len(seq) > LIST_BATCH:
            first, top = int(seq.min()), int(seq.max())
        elif len(seq):  # a round's replies: min and max of a list cost less than 2 reductions
            vals = seq.tolist()
            first, top = min(vals), max(vals)
        else:
            return
        if top < self.lo:
            return  # all sent before the window
        if first < self.lo:
            seq = seq[seq >= self.lo]
        if top >= len(self.seen):
            grown = np.zeros(max(top + 1, 2 * len(self.seen)), dtype=bool)
            grown[: len(self.seen)] = self.seen
            self.seen = grown
        self.seen[seq] = True
        self.receipts += len(seq)

    def record_few(self, seqs: list[int]) -> None:
        """As :meth:`record`, for a short non-empty list (a small round), without arrays
        (:attr:`mark`: in C when built)."""
        got = self.mark(seqs, self.seen, self.lo)
        if got < 0:  # past the bitmap's end: grow it
            self.record(np.asarray(seqs, dtype=np.int64))
            return
        self.receipts += got

    def answered(self, hi: int) -> bool:
        """Every window message below ``hi`` has had a reply. Incremental: the first
        unanswered seq found is where the next call starts looking."""
        lo = min(max(self.lo, self.gap), hi)
        seen = self.seen[lo:hi]
        if len(seen) < hi - lo:
            self.gap = lo + int(np.argmin(seen)) if len(seen) and not seen.all() \
                else lo + len(seen)
            return False
        if seen.all():
            self.gap = hi
            return True
        self.gap = lo + int(np.argmin(seen))
        return False

    def finish(self, hi: int) -> tuple[int, int, int]:
        """(unique replies, lost, duplicates) for window messages seq in [lo, hi)."""
        lo = min(self.lo, hi)
        unique = int(np.count_nonzero(self.seen[lo:hi]))
        return unique, (hi - lo) - unique, self.receipts - unique


@dataclass(slots=True)  # not frozen: a compiled (mypyc) frozen dataclass does not unpickle
class FanoutPart:
    """One worker's view of broadcast deliveries, merged across workers by the coordinator."""

    node_unique: np.ndarray  # per target node: distinct (receiver, message) deliveries
    node_dups: np.ndarray  # per target node: deliveries beyond the first
    node_reordered: np.ndarray  # per node: deliveries older than one already seen from that sender
    msg_key: np.ndarray  # u64 worker << 32 | seq, per distinct message received here
    msg_count: np.ndarray  # receivers here that got it
    msg_last: np.ndarray  # ns, latest first-arrival among those receivers
    msg_t: np.ndarray  # ns, its intended send time (closed loop: its send, BroadcastLedger)


class BroadcastLedger:
    """Every receiver in the room is expected to get every window message once."""

    def __init__(self, node_of_conn: np.ndarray, n_nodes: int) -> None:
        self.node_of_conn = node_of_conn
        self.n_nodes = n_nodes
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.t0 = 1 << 62  # deliveries of messages intended before this are not accounted
        self.firsts: np.ndarray | None = None  # --cluster: each machine's first worker
        self.shift = np.zeros(0, dtype=np.int64)  # and ns from its clock to ours
        # closed loop: a delivery's time runs from its message's send (the stamp's intended
        # time plus its delay: the send's lag in its round), not from the round's clock read
        self.from_send = False

    def start(self, t0: int, shifts: tuple[tuple[int, int], ...] = ()) -> None:
        """The window opens at ``t0``; ``shifts``: (first worker, ns) of each machine of a
        --cluster run, so that a message is judged by its intended time in our clock."""
        self.t0 = t0
        if shifts:
            self.firsts = np.array([f for f, _ in shifts], dtype=np.int64)
            self.shift = np.array([d for _, d in shifts], dtype=np.int64)

    def record(self, recv: np.ndarray, st: np.ndarray, t_recv: np.ndarray) -> int:
        """``recv``: receiving connection per delivery; ``st``: valid stamps. Returns the
        deliveries of window messages among them."""
        if self.firsts is None:
            keep = st["t"] >= self.t0
        else:  # the sender's clock is another machine's
            at = np.maximum(np.searchsorted(self.firsts, st["worker"], side="right") - 1, 0)
            keep = st["t"].astype(np.int64) + self.shift[at] >= self.t0
        n = int(np.count_nonzero(keep))
        if n:
            s = st[keep]
            t_from = s["t"].astype(np.int64)
            if self.from_send and s["delay"].any():  # closed loop: from the send itself
                t_from += s["delay"].astype(np.int64) * 1000
            self.parts.append((recv[keep], s["conn"], s["worker"], s["seq"], t_from,
                               t_recv[keep]))
        return n

    def distinct(self) -> int:
        """Distinct (receiver, message) deliveries so far: duplicates counted once. Its
        parts are joined into one on the way (so :meth:`finish` does not join them again);
        a sort of every delivery, for a drain to ask rarely."""
        if not self.parts:
            return 0
        if len(self.parts) > 1:
            self.parts = [tuple(np.concatenate(c) for c in zip(*self.parts, strict=True))]
        recv, _gid, worker, seq = self.parts[0][:4]
        pair = (recv.astype(np.uint64) << np.uint64(48)) | \
            (worker.astype(np.uint64) << np.uint64(32)) | seq.astype(np.uint64)
        return len(np.unique(pair))

    def finish(self) -> FanoutPart:
        z = np.zeros(self.n_nodes, dtype=np.int64)
        if not self.parts:
            e = np.zeros(0, dtype=np.int64)
            return FanoutPart(z, z.copy(), z.copy(), e.astype(np.uint64), e, e, e)
        recv, gid, worker, seq, t_int, t_recv = (np.concatenate(c) for c in zip(*self.parts,
                                                                               strict=True))
        self.parts = []
        recv = recv.astype(np.uint64)
        msg = (worker.astype(np.uint64) << np.uint64(32)) | seq.astype(np.uint64)
        pair = (recv << np.uint64(48)) | msg
        _, first = np.unique(pair, return_index=True)  # first arrival of each pair
        node = self.node_of_conn[recv.astype(np.int64)]
        node_all = np.bincount(node, minlength=self.n_nodes)
        node_unique = np.bincount(node[first], minlength=self.n_nodes)
        reordered = self._reordered(recv, gid, seq)
        node_reordered = np.bincount(node[reordered], minlength=self.n_nodes)
        keys, inv, counts = np.unique(msg[first], return_inverse=True, return_counts=True)
        last = np.zeros(len(keys), dtype=np.int64)
        np.maximum.at(last, inv, t_recv[first].astype(np.int64))
        tint = np.zeros(len(keys), dtype=np.int64)
        tint[inv] = t_int[first].astype(np.int64)
        return FanoutPart(node_unique, node_all - node_unique, node_reordered, keys, counts,
                          last, tint)

    @staticmethod
    def _reordered(recv: np.ndarray, gid: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """Indices of deliveries whose seq is below one already seen on the same
        (receiver, sender) pair, in arrival order."""
        pair = (recv << np.uint64(32)) | gid.astype(np.uint64)
        order = np.argsort(pair, kind="stable")
        p = pair[order]
        group = np.concatenate(([0], np.cumsum(p[1:] != p[:-1])))
        adj = (group.astype(np.int64) << 33) + seq[order].astype(np.int64)
        runmax = np.maximum.accumulate(adj)
        late = np.zeros(len(adj), dtype=bool)
        late[1:] = adj[1:] < runmax[:-1]
        return order[late]
