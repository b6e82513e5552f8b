"""A round of PUBLISH packets at once, with numpy: each stamped frame of the round (as
raw TCP would send it) becomes the payload of one PUBLISH to the run's topic, its packet id
(QoS 1 and 2) from the message's number. Nothing here is done once per message in Python.

Sizes are bytes.
"""

from __future__ import annotations

import numpy as np

from harness.protocols.mqtt.packets import PINGREQ, PUBLISH, V5

_VARINT_TOPS = np.array([128, 16_384, 2_097_152], dtype=np.int64)


def packet_ids(seq0: int, n: int) -> np.ndarray:
    """The packet ids of messages ``seq0 .. seq0+n-1`` (1..65535, never 0): unique among a
    worker's unacknowledged messages while fewer than 65,535 are."""
    return (np.arange(seq0, seq0 + n, dtype=np.int64) % 65535) + 1


class Publisher:
    """Wraps a round's stamped frames in PUBLISH packets (``topic``, ``qos``, ``version``);
    with ``ping``, each connection's last message of the round is followed by a PINGREQ
    (QoS 0: its PINGRESP tells the broker has taken those messages)."""

    def __init__(self, topic: str, qos: int, version: int, ping: bool) -> None:
        t = topic.encode()
        self.qos = qos
        self.ping = ping
        self.first = PUBLISH << 4 | qos << 1
        self.prefix = np.frombuffer(len(t).to_bytes(2, "big") + t, dtype=np.uint8)
        self.extra = (2 if qos else 0) + (1 if version == V5 else 0)  # packet id, properties
        self.out = np.zeros(0, dtype=np.uint8)

    def wrap(self, data: memoryview, ends: np.ndarray, counts: np.ndarray, seq0: int
             ) -> tuple[memoryview, np.ndarray]:
        """The round's packets and where each message ends in them (``counts``: messages
        per connection, in order)."""
        n = len(ends)
        sizes = np.diff(ends, prepend=0)
        rem = len(self.prefix) + self.extra + sizes
        vl = 1 + np.searchsorted(_VARINT_TOPS, rem, side="right")
        plen = 1 + vl + rem
        if self.ping:
            plen[np.cumsum(counts) - 1] += 2
        out_ends = np.cumsum(plen)
        total = int(out_ends[-1])
        if len(self.out) < total:
            self.out = np.zeros(max(total, 2 * len(self.out)), dtype=np.uint8)
        out = self.out
        off = out_ends - plen
        out[off] = self.first
        for k in range(4):  # the remaining length, a byte column at a time
            has = vl > k
            out[(off + 1 + k)[has]] = ((rem[has] >> (7 * k)) & 0x7F) | \
                np.where(vl[has] > k + 1, 0x80, 0)
        at = off + 1 + vl
        tl = len(self.prefix)
        out[at[:, None] + np.arange(tl)] = self.prefix
        at = at + tl
        if self.qos:
            pid = packet_ids(seq0, n)
            out[at], out[at + 1] = pid >> 8, pid & 0xFF
            at = at + 2
        if self.extra & 1:
            out[at] = 0
            at = at + 1
        src = np.frombuffer(data, dtype=np.uint8, count=int(ends[-1]))
        out[np.repeat(at - (ends - sizes), sizes) + np.arange(len(src))] = src
        if self.ping:
            last = out_ends[np.cumsum(counts) - 1]
            out[last - 2], out[last - 1] = PINGREQ << 4, 0
        return out[:total].data.cast("B"), out_ends
