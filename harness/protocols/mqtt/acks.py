"""What each publisher awaits from the broker, and the acks matched to it.

* QoS 1: a PUBACK per message, QoS 2: a PUBREC (answered with a PUBREL) then a PUBCOMP,
  matched by packet id (a worker's ids are unique among its unacknowledged messages:
  harness.protocols.mqtt.pubs.packet_ids) and by connection. An ack for no message awaiting
  it on that connection (a second PUBACK, an unknown id) is ``mqtt_stray_ack``.
* QoS 0 has no ack: each connection's messages of a round are followed by a PINGREQ, and
  its PINGRESP (the broker answers packets in order) acks them. The keep-alive's own
  PINGREQs queue an empty entry, so every PINGRESP pops one.

The ack frees the message's slot (closed loop) and its latency, from the intended send, is
the broker's ack latency. Times are ns.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from harness.protocols.mqtt.packets import PINGRESP, PUBACK, PUBCOMP, PUBREC
from harness.protocols.mqtt.pubs import packet_ids

IDS = 65536
AWAIT_ACK, AWAIT_COMP = 1, 2  # a message's state: its PUBACK or PUBREC due, its PUBCOMP due


class Table:
    """One step's messages awaiting an ack (``n`` connections, at ``qos``)."""

    def __init__(self, n: int, qos: int) -> None:
        self.qos = qos
        self.owner = np.full(IDS, -1, dtype=np.int64)
        self.tint = np.zeros(IDS, dtype=np.int64)
        self.state = np.zeros(IDS, dtype=np.uint8)
        self.pings: list[deque[tuple[int, np.ndarray | int]]] = [deque() for _ in range(n)] \
            if qos == 0 else []

    def sent(self, idx: np.ndarray, counts: np.ndarray, seq0: int,
             tint: np.ndarray | int) -> None:
        """A round's messages went out (``counts[k]`` on connection ``idx[k]``, numbered from
        ``seq0``, intended at ``tint``)."""
        if self.qos == 0:
            last = np.cumsum(counts)
            for i, c, b in zip(idx.tolist(), counts.tolist(), last.tolist(), strict=True):
                t = tint if isinstance(tint, int) else tint[b - c:b]
                self.pings[i].append((c, t))
            return
        pid = packet_ids(seq0, int(counts.sum()))
        self.owner[pid] = idx.repeat(counts)
        self.tint[pid] = tint
        self.state[pid] = AWAIT_ACK

    def pinged(self, i: int) -> None:
        """A keep-alive PINGREQ went out on connection ``i``: its PINGRESP acks nothing."""
        if self.pings:
            self.pings[i].append((0, 0))

    def forget(self, i: int) -> None:
        """Connection ``i`` closed: what it awaited never comes."""
        if self.pings:
            self.pings[i].clear()

    def take(self, acks: list[tuple[int, int, int, int]]
             ) -> tuple[list[int], list[tuple[int, np.ndarray | int]], list[tuple[int, int]],
                        int]:
        """A round's acks: (the connection each acked message frees, one entry per message;
        (ack time, intended send times) of the acked messages; the PUBRELs to send as
        (connection, id); stray acks)."""
        free: list[int] = []
        lat: list[tuple[int, np.ndarray | int]] = []
        rel: list[tuple[int, int]] = []
        stray = 0
        for i, kind, pid, t in acks:
            if kind == PINGRESP:
                if self.pings and self.pings[i]:
                    c, tint = self.pings[i].popleft()
                    if c:
                        free.extend([i] * c)
                        lat.append((t, tint if not isinstance(tint, int)
                                    else np.full(c, tint, dtype=np.int64)))
                continue
            want = AWAIT_COMP if kind == PUBCOMP else AWAIT_ACK
            if self.qos == 0 or self.owner[pid] != i or self.state[pid] != want or \
                    (kind == PUBACK) != (self.qos == 1):
                stray += 1
                continue
            if kind == PUBREC:
                self.state[pid] = AWAIT_COMP
                rel.append((i, pid))
                continue
            self.state[pid] = 0
            free.append(i)
            lat.append((t, int(self.tint[pid])))
        return free, lat, rel, stray
