"""The MQTT byte stream of a round, sans I/O: :class:`MqttProtocol` cuts each read into
packets in place. A PUBLISH's payload (a stamped frame of the run's framing) is moved to
the front of the connection's bytes, so the round buffer holds back-to-back stamped frames
that :class:`harness.protocols.ws.wsproto.WsProtocol`'s parse reads (one frame per message),
matched by stamp; every other packet is noted for the transport to act on after the round:

* ``acks``: (connection, packet type, packet id, receive ns) of the PUBACK, PUBREC,
  PUBCOMP and PINGRESP a publisher got;
* ``replies``: (connection, bytes) a subscriber owes the broker, in order (PUBACK or PUBREC
  for a PUBLISH at QoS 1 or 2, PUBCOMP for a PUBREL; a run of like packets' acks at once);
* ``faults``: (connection, error kind) of a stream that broke: ``mqtt_malformed``,
  ``mqtt_oversize``, ``mqtt_disconnect_<reason>`` (the broker's DISCONNECT). The whole
  packets before the break count; the transport then closes the connection.

A retained PUBLISH (flag set: a message kept from before the subscription) is acked as the
protocol asks but never counted as a delivery (``retained``), nor is a PUBLISH without a
payload (``empty``, each one ``protocol`` error).

Sizes are bytes; times ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import numpy as np

from harness.protocols.mqtt.acks import Table
from harness.protocols.mqtt.packets import (
    CONNACK,
    DISCONNECT,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    UNSUBACK,
    V5,
    Broken,
    ack,
    header,
    pid_of,
    publish_parts,
)
from harness.protocols.mqtt.pubs import Publisher
from harness.protocols.ws.wsproto import WsProtocol
from harness.wire.batch import Outbound
from harness.wire.framing import Framing

PUB_ACKS = (PUBACK, PUBREC, PUBCOMP)
FAST_MIN = 512  # bytes of a read worth trying the run of like packets at once
IGNORED = (CONNACK, SUBACK, UNSUBACK)  # answers to what the handshake sent (a late copy)


class MqttProtocol(WsProtocol):
    """Stamped frames inside PUBLISH payloads, matched by stamp."""

    def __init__(self, framing: Framing, out: Outbound, max_frame: int, key: int, n: int,
                 version: int, publisher: Publisher) -> None:
        super().__init__(framing, out, None, max_frame, key, n, False)
        self.version = version
        self.publisher = publisher
        self.now = 0  # the receive time of the read being cut (set by the transport)
        self.acks: list[tuple[int, int, int, int]] = []
        self.replies: list[tuple[int, bytes]] = []
        self.faults: list[tuple[int, str]] = []
        self.table = Table(n, publisher.qos)  # what each publisher awaits
        self.retained: list[tuple[int, int]] = []  # (connection, receive ns) of each
        self.empty = 0

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """The round's stamped frames, each in a PUBLISH (noted in ``table`` for the acks)."""
        data, ends, kinds = self.out.build(gid, seq0, tint, delay)
        packets, out_ends = self.publisher.wrap(data, ends, counts, seq0)
        self.table.sent(idx, counts, seq0, tint)
        return packets, out_ends, kinds

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None,
            broken: list[int]) -> tuple[int, int]:
        """Connection ``i``'s whole packets of ``buf[start:end]``: PUBLISH payloads moved to
        ``buf[start:cut]`` (each start walked), the unfinished packet's bytes after them to
        ``keep``. A broken stream keeps nothing and is noted in ``faults``."""
        assert walk is not None
        p, w = self._fast(buf, i, start, end, walk) if end - start >= FAST_MIN \
            else (start, start)
        try:
            while p < end:
                h = header(buf, p, end, self.max_frame)
                if h is None:
                    break
                first, hl, rem = h
                nxt = p + hl + rem
                w = self._packet(buf, i, first, p + hl, nxt, w, walk)
                p = nxt
        except Broken as exc:
            self.faults.append((i, exc.kind))
            return w, w
        if p > w:
            buf[w:w + end - p] = buf[p:end]
        return w, w + end - p

    def _fast(self, buf: bytearray, i: int, start: int, end: int, walk: list[int]
              ) -> tuple[int, int]:
        """The common case at once: a run of PUBLISH packets of one size, topic and QoS (every
        header byte alike but the packet id) from ``start``: their payloads moved to the
        front with one numpy copy, their acks (QoS 1 and 2) built as one block of bytes.
        Returns where the packets after the run begin, and the write position."""
        first, rem = buf[start], buf[start + 1]
        qos = first >> 1 & 3
        if first & 0xF9 != PUBLISH << 4 or qos == 3 or not rem or rem & 0x80:
            return start, start  # (a 1-byte remaining length: packets under 130 bytes)
        size, pc = 2 + rem, 4 + (buf[start + 2] << 8 | buf[start + 3])  # pc: packet id at
        hdr = pc + (2 if qos else 0) + (self.version == V5)
        k = (end - start) // size
        if k < 2 or hdr >= size:
            return start, start
        a = np.frombuffer(buf, dtype=np.uint8, count=k * size, offset=start).reshape(k, size)
        a = a[:_alike(a, pc, hdr, qos)]
        k, n = len(a), size - hdr
        if k < 2:
            return start, start
        if qos:
            acks = np.empty((k, 4), dtype=np.uint8)
            acks[:, 0], acks[:, 1] = (PUBACK if qos == 1 else PUBREC) << 4, 2
            acks[:, 2:] = a[:, pc:pc + 2]
            self.replies.append((i, acks.tobytes()))
        buf[start:start + k * n] = a[:, hdr:].copy().data.cast("B")
        walk.extend(range(start, start + k * n, n))
        return start + k * size, start + k * n

    def _packet(self, buf: bytearray, i: int, first: int, body: int, nxt: int, w: int,
                walk: list[int]) -> int:
        """One whole packet (its body ``buf[body:nxt]``); returns the write position."""
        kind = first >> 4
        if kind == PUBLISH:
            return self._publish(buf, i, first, body, nxt, w, walk)
        if kind in PUB_ACKS or kind == PINGRESP:
            pid = pid_of(buf[body:nxt]) if kind != PINGRESP else 0
            self.acks.append((i, kind, pid, self.now))
        elif kind == PUBREL:
            self.replies.append((i, ack(PUBCOMP, pid_of(buf[body:nxt]))))
        elif kind == DISCONNECT:
            reason = buf[body] if nxt > body else 0
            raise Broken(f"mqtt_disconnect_{reason}", "the broker sent DISCONNECT")
        elif kind not in IGNORED:
            raise Broken("mqtt_malformed", f"a packet of type {kind} sent to a client")
        return w

    def _publish(self, buf: bytearray, i: int, first: int, body: int, nxt: int, w: int,
                 walk: list[int]) -> int:
        pid, at = publish_parts(buf, body, nxt, first, self.version)
        qos = first >> 1 & 3
        if qos:
            self.replies.append((i, ack(PUBACK if qos == 1 else PUBREC, pid)))
        if first & 1:  # retained: from before the subscription, never a delivery
            self.retained.append((i, self.now))
            return w
        n = nxt - at
        if not n:
            self.empty += 1
            return w
        walk.append(w)
        buf[w:w + n] = buf[at:nxt]
        return w + n


def _alike(a: np.ndarray, pc: int, hdr: int, qos: int) -> int:
    """How many of the packets (rows of ``a``) from the first have its header, packet id
    (bytes ``pc``, ``pc+1`` at QoS 1 and 2) aside."""
    if qos:
        same = (a[:, :pc] == a[0, :pc]).all(axis=1) & \
            (a[:, pc + 2:hdr] == a[0, pc + 2:hdr]).all(axis=1)
    else:
        same = (a[:, :hdr] == a[0, :hdr]).all(axis=1)
    return len(same) if same.all() else int(np.argmin(same))
