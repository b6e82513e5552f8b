"""Delivery: who is expected to get each message, and what a valid reply is. Echo and
broadcast behind one interface, so the worker never asks which one it has.

* :class:`Echo`: each message comes back once, on the connection (and worker) that sent
  it; lost and duplicates from a bitmap of seqs (:class:`harness.core.ledger.EchoLedger`).
* :class:`Broadcast`: every connection in the room gets every message; deliveries are
  kept for the coordinator to merge (:class:`harness.core.ledger.BroadcastLedger`).

Times are ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from harness.core.ledger import BroadcastLedger, EchoLedger
from harness.core.result import WorkerResult
from harness.core.units import SEC
from harness.wire import hot
from harness.wire.inbound import Parsed

QUIET_NS = 200_000_000  # broadcast drain: this quiet after the last delivery ends it
RECOUNT_NS = 50_000_000  # broadcast drain: distinct deliveries recounted at most this often
DRAIN_CAP_NS = 60 * SEC  # a broadcast drain never outlasts this (or 10 timeouts)


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed in pure modules
class Echo:
    mangled_frees_slot = True  # a mangled reply arrived: it answers its message (no timeout)
    loose = False  # a reply that is not one of ours freed a slot this step
    sent_by_stamp = False  # sent counts by the send's clock read

    def __init__(self, worker: int, gid: np.ndarray) -> None:
        self.worker = worker
        self.gid = gid  # global connection id per local connection
        self.ledger = EchoLedger(hot.mark_few)  # (in C when built)
        self.hi = 0  # first seq after the window, once sending stopped

    def start(self, seq: int, measure: int, shifts: tuple = ()) -> None:
        """The measure window opens at message ``seq`` (this worker's numbering)."""
        self.ledger.start(seq)

    def valid(self, p: Parsed) -> np.ndarray:
        """A reply must come back to the connection (and worker) that sent it."""
        st = p.st
        return p.ok & (st["worker"] == self.worker) & (st["conn"] == self.gid[p.conn])

    def record(self, conn: np.ndarray, st: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Valid replies in; returns the connection each answers (one entry per reply)."""
        self.ledger.record(st["seq"])
        return conn

    def stop(self, hi: int) -> None:
        """Sending stopped: the window's messages are seq below ``hi``."""
        self.hi = hi

    def drained(self, now: int, drain_until: int, timeout_ns: int, pending: bool,
                last_rx: int, alive_share: float) -> bool:
        """Every reply in, or the reply timeout passed since sending stopped. Every reply
        is in when no slot waits *and* every window message has its reply: a reply that
        is not one of ours (junk, a mangled echo) frees a slot as if it were, so the slots
        alone may say done while echoes are still on their way (looked at only once such a
        reply freed a slot: ``loose``)."""
        return now >= drain_until or not pending and (
            not self.loose or self.ledger.answered(self.hi))

    def finish(self, res: WorkerResult, hi: int) -> None:
        """Lost and duplicates among the window's messages (seq below ``hi``)."""
        _, res.lost, res.duplicates = self.ledger.finish(hi)


class Broadcast:
    mangled_frees_slot = False
    loose = False  # (never: no slot is freed by a reply that is not one of ours)
    sent_by_stamp = True  # open loop: receivers judge the window by the stamp, so must we

    def __init__(self, worker: int, gid: np.ndarray, node: np.ndarray, n_nodes: int,
                 expect: int | None) -> None:
        self.worker = worker
        self.gid = gid
        self.ledger = BroadcastLedger(node.astype(np.int64), n_nodes)
        self.expect = expect  # deliveries this worker awaits (a --messages step), or None
        self.deliveries = 0  # of window messages, duplicates included
        self.measure = 1 << 62
        self.distinct = 0  # of them distinct, as last counted (:meth:`_all_in`)
        self.counted_at = (-1, 0)  # (deliveries, ns) when they were last counted

    def start(self, seq: int, measure: int, shifts: tuple = ()) -> None:
        """The window opens at ``measure``; ``shifts`` read other machines' stamps in our
        clock (--cluster)."""
        self.measure = measure
        self.ledger.start(measure, shifts)

    def valid(self, p: Parsed) -> np.ndarray:
        return p.ok

    def record(self, conn: np.ndarray, st: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Deliveries in; returns the senders among the receivers (their own message back)."""
        self.deliveries += self.ledger.record(conn, st, t)
        return conn[st["conn"] == self.gid[conn]]

    def stop(self, hi: int) -> None:
        """Sending stopped (the room's drain does not look at seqs)."""

    def drained(self, now: int, drain_until: int, timeout_ns: int, pending: bool,
                last_rx: int, alive_share: float) -> bool:
        """Other workers may still be sending into the room: wait until every delivery is
        in, or until nothing has arrived for 2 x timeout + 200 ms (bounded by
        DRAIN_CAP_NS). A sender elsewhere may be stalled for one reply timeout (+ a 100 ms
        tick) before it carries on: only a longer silence means the room is done."""
        stopped = drain_until - timeout_ns
        quiet = now - max(last_rx, stopped)
        if quiet >= 2 * timeout_ns + QUIET_NS or \
                now - stopped >= max(DRAIN_CAP_NS, 10 * timeout_ns):
            return True
        if pending:
            return False
        if self.expect is not None:
            return self._all_in(self.expect * alive_share, now)
        return quiet >= min(QUIET_NS, timeout_ns)

    def _all_in(self, want: float, now: int) -> bool:
        """Every awaited delivery is in: ``want`` distinct ones. A duplicate (a broker's
        redelivery, a server that sends twice) must not stand for a delivery still on its
        way, or the drain would end early and count it lost: once the deliveries, with
        duplicates, reach ``want``, the distinct ones are counted (at most every
        RECOUNT_NS, and only when more came since)."""
        if self.deliveries < want:
            return False
        if self.distinct < want and self.deliveries != self.counted_at[0] and \
                now - self.counted_at[1] >= RECOUNT_NS:
            self.distinct = self.ledger.distinct()
            self.counted_at = (self.deliveries, now)
        return self.distinct >= want

    def finish(self, res: WorkerResult, hi: int) -> None:
        res.fanout = self.ledger.finish()


def delivery_for(delivery: str, worker: int, gid: np.ndarray, node: np.ndarray, n_nodes: int,
                 expect: int | None) -> Echo | Broadcast:
    """The delivery a workload names: "echo" or "broadcast"."""
    if delivery == "broadcast":
        return Broadcast(worker, gid, node, n_nodes, expect)
    return Echo(worker, gid)
