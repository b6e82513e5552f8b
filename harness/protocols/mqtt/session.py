"""The transport of an ``mqtt://`` or ``mqtts://`` step: the MQTT session in its connect,
the broker's acks and the keep-alive after each round, DISCONNECT at the end.

* Connect: TCP (then TLS for mqtts://: harness.protocols.tls's layer), then CONNECT, and
  for a subscriber (a connection that does not send: ``--listen``) SUBSCRIBE at once. The
  connection is up (it may send, its connect time taken) once the CONNACK, and for a
  subscriber the SUBACK, came back. A refusal is a failed connect by its code
  (``connect_mqtt_5``: not authorised; ``connect_mqtt_suback_128``); no CONNACK (or SUBACK)
  within ``--connect-timeout`` is ``connect_mqtt_timeout``; a broken answer ``mqtt_malformed``.
* After each round: the acks a publisher got free its messages' slots and give the broker's
  ack latency (harness.protocols.mqtt.acks), PUBRELs answer PUBRECs; a subscriber's acks
  (PUBACK, PUBREC, PUBCOMP) go back; a broken stream closes its connection, counted by
  kind (harness.protocols.mqtt.stream).
* Every keep-alive / 2 s a PINGREQ goes out on every open connection.

Times are ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import numpy as np

from harness.core.units import SEC
from harness.protocols.mqtt.options import Session
from harness.protocols.mqtt.packets import (
    BYE,
    CONNACK,
    PING,
    PUBREL,
    SUBACK,
    Broken,
    ack,
    connack,
    connect,
    header,
    suback,
    subscribe,
)
from harness.protocols.mqtt.stream import MqttProtocol
from harness.wire.connects import hello_read, hello_send
from harness.wire.transport import Reads, Transport

MAX_HELLO = 64 * 1024  # most bytes before the CONNACK (and SUBACK) are read
SUB_ID = 1  # the packet id of the one SUBSCRIBE

Acked = Callable[[np.ndarray, int, list[tuple[int, np.ndarray | int]]], None]


class MqttTransport(Transport):
    """The transport with the MQTT session in its connect and the acks after each round."""

    def __init__(self, *args, session: Session, acked: Acked,  # type: ignore[no-untyped-def]
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.session = session
        self.acked = acked  # (connections freed, ack time, (ack ns, intended ns) pairs)
        self.subscriber = ~np.asarray(args[0].sends, dtype=bool)
        self.waiting = np.zeros(self.n, dtype=np.uint8)  # 2: CONNACK due, 1: SUBACK due
        self.hello: list[bytes] = [b""] * self.n
        self.ready = np.zeros(self.n, dtype=bool)  # its session came up (once)
        proto = self.protocol
        assert isinstance(proto, MqttProtocol)
        self.mqtt = proto
        every = session.keepalive_s * SEC // 2
        self.ping_every = every
        self.next_ping = time.monotonic_ns() + every if every else 0

    def close(self, i: int) -> None:
        self.waiting[i] = 0
        self.hello[i] = b""
        self.mqtt.table.forget(i)
        super().close(i)

    # ------------------------------------------------------------------ the session

    def opened(self, i: int, s: socket.socket, now: int) -> int:
        """TCP (and TLS) is up: CONNECT (and SUBSCRIBE); wait for the answers (0)."""
        ss = self.session
        node = int(self.node[i])
        data = connect(f"{ss.client_prefix}{int(self.gids[i])}", ss.version, ss.keepalive_s,
                       ss.clean, ss.user, ss.password)
        self.waiting[i] = 2
        if self.subscriber[i]:
            data += subscribe(SUB_ID, [ss.filters[node]], ss.qos, ss.version)
            self.waiting[i] = 3
        return hello_send(self, i, s, data)

    def finish_connect(self, i: int) -> int:
        """The connect as the transport's (which then sends CONNECT: :meth:`opened`); then
        (readable) the broker's answers; 1 when the session settled (either way)."""
        s = self.socks[i]
        if s is None or self.alive[i]:
            return 0
        if not self.waiting[i]:
            return super().finish_connect(i)
        got = hello_read(self, i, MAX_HELLO)
        return got if isinstance(got, int) else self._answers(i, self.hello[i] + got)

    def _answers(self, i: int, data: bytes) -> int:
        """Read the CONNACK (and SUBACK) from ``data``; 1 when settled."""
        p = 0
        try:
            while self.waiting[i]:
                h = header(data, p, len(data), MAX_HELLO)
                if h is None:
                    self.hello[i] = data[p:]
                    return 0
                first, hl, rem = h
                body = data[p + hl:p + hl + rem]
                p += hl + rem
                kind = self._answer(i, first >> 4, body)
                if kind:
                    self.sink.unparsed(memoryview(data))
                    self.fail(i, kind)
                    return 1
        except Broken as exc:
            self.sink.unparsed(memoryview(data))
            self.fail(i, exc.kind)
            return 1
        self.hello[i] = b""
        self.pend_in[i] = data[p:]  # (a retained message may follow the SUBACK)
        self.alive[i] = True
        self._up(i, time.monotonic_ns())
        return 1

    def _answer(self, i: int, kind: int, body: bytes) -> str:
        """One answer of the handshake: "" when good, else the error kind."""
        if kind == CONNACK and self.waiting[i] & 2:
            _, code = connack(body)
            self.waiting[i] = int(self.waiting[i]) & 1
            return f"connect_mqtt_{code}" if code else ""
        if kind == SUBACK and self.waiting[i] == 1:
            _, codes = suback(body, self.session.version)
            self.waiting[i] = 0
            bad = [c for c in codes if c >= 0x80]
            return f"connect_mqtt_suback_{bad[0]}" if bad or not codes else ""
        return "mqtt_malformed"

    def _up(self, i: int, now: int) -> None:
        self.ready[i] = True
        if self.tls is None:
            self.sink.connected(i, now - int(self.started[i]))
        else:
            self.sink.handshaken(i, self.tls.opened_in(i, now))

    def late_kind(self, i: int) -> str:
        return "connect_mqtt_timeout" if self.waiting[i] else super().late_kind(i)

    def flush(self, i: int) -> None:
        if not self.alive[i] and self.waiting[i]:
            return  # the session waits for its answers (readable), not writability
        super().flush(i)

    # ------------------------------------------------------------------ a round

    def read_round(self, ready: list[int]) -> None:
        """Sessions being set up go on; the open connections' packets are read; then the
        round's acks, replies and broken streams."""
        alive = self.alive
        opening = [i for i in ready if not alive[i]]
        for i in opening:
            self.finish_connect(i)
        super().read_round([i for i in ready if alive[i]] if opening else ready)
        self._after()

    def _keep(self, i: int, start: int, end: int, t: int, r: Reads) -> int:
        self.mqtt.now = t  # the acks cut from this read were received at t
        return super()._keep(i, start, end, t, r)

    def _after(self) -> None:
        proto = self.mqtt
        if proto.faults:
            for i, kind in proto.faults:
                if self.socks[i] is not None:
                    self.fail(i, kind)
            proto.faults.clear()
        if proto.empty:
            self.sink.error("protocol", proto.empty, time.monotonic_ns())
            proto.empty = 0
        if proto.replies:
            self._reply(proto.replies)
            proto.replies.clear()
        if proto.acks:
            free, lat, rel, stray = proto.table.take(proto.acks)
            t = proto.acks[-1][3]
            proto.acks.clear()
            if stray:
                self.sink.error("mqtt_stray_ack", stray, t)
            if rel:
                self._reply([(i, ack(PUBREL, pid)) for i, pid in rel])
            if free:
                self.acked(np.asarray(free, dtype=np.int64), t, lat)

    def _reply(self, packets: list[tuple[int, bytes]]) -> None:
        """Send each connection its packets (one send per connection)."""
        by: dict[int, list[bytes]] = {}
        for i, data in packets:
            by.setdefault(i, []).append(data)
        for i, parts in by.items():
            self.send(i, b"".join(parts))

    def tick(self, now: int, sending: bool, connect_timeout_ns: int) -> None:
        """Every ~100 ms: the keep-alive's PINGREQ on every open connection when due."""
        if self.ping_every and now >= self.next_ping:
            self.next_ping = now + self.ping_every
            for i in np.flatnonzero(self.alive).tolist():
                self.mqtt.table.pinged(i)
                self.send(i, PING)

    def close_all(self) -> None:
        """DISCONNECT on every open connection with nothing queued, then close."""
        for i in np.flatnonzero(self.alive).tolist():
            s = self.socks[i]
            if s is not None and self.pend_out[i] is None:
                with contextlib.suppress(OSError):
                    s.send(BYE)
        super().close_all()


__all__ = ["MqttTransport"]
