"""MQTT's part in a worker's step: stamped frames inside PUBLISH packets (matched by stamp:
the run's broadcast accounting, every subscriber expected to get every message once), the
transport with the MQTT session, and the broker's ack latency.

Publishers are the step's sending connections (``--conns``), subscribers its listen-only
ones (``--listen`` per target node): publishers do not subscribe, so the deliveries a node
expects are its subscribers' (:meth:`MqttWire.finish` says so in ``node_connected``).
"""

from __future__ import annotations

import ssl
from typing import Any

import numpy as np

from harness.core.histogram import Histogram
from harness.core.result import Share, WorkerResult
from harness.protocols.mqtt.options import Session
from harness.protocols.mqtt.pubs import Publisher
from harness.protocols.mqtt.session import MqttTransport
from harness.protocols.mqtt.stream import MqttProtocol
from harness.protocols.wire import Wire
from harness.wire.poller import Poller
from harness.wire.transport import Transport

QUIET_NS = 200_000_000  # a worker with subscribers ends its drain after this long quiet


class MqttWire(Wire):
    def __init__(self, w: Any) -> None:
        super().__init__(w)
        self.session: Session = w.plan.options
        self.acks = Histogram()
        self.acked_n = 0
        self.subscribers = 0

    def protocol(self, key: int) -> MqttProtocol:
        w = self.w
        ss, share = self.session, w.share
        sender = np.flatnonzero(share.sends)
        node = int(share.node[sender[0]]) if len(sender) else 0
        pub = Publisher(ss.topics[node], ss.qos, ss.version, ping=ss.qos == 0)
        self.acks = Histogram()
        self.acked_n = 0
        return MqttProtocol(w.framing, w.out, w.plan.max_frame, key, len(share.node),
                            ss.version, pub)

    def transport(self, share: Share, sel: Poller, tls: ssl.SSLContext | None) -> Transport:
        w = self.w
        return MqttTransport(share, w.addrs, w.plan.source_addrs, sel, w.rounds, w.proto, w,
                             session=self.session, acked=self.acked, tls=self.layer(share, tls))

    def joined(self, tp: Transport) -> None:
        """The deliveries this worker awaits (a --messages step) are its subscribers' only:
        the publishers do not subscribe."""
        deliv, sends = self.w.deliv, np.asarray(self.w.share.sends, dtype=bool)
        self.subscribers = int(np.count_nonzero(~sends))
        expect = getattr(deliv, "expect", None)
        if expect is not None and len(sends):
            deliv.expect = expect // len(sends) * int(np.count_nonzero(~sends))

    def awaiting(self, now: int, drain_until: int) -> bool:
        """The room's count of deliveries says the drain is over, but a redelivery (QoS 1's
        duplicates) counts in it as one: a worker with subscribers waits, besides, until
        nothing came for QUIET_NS (or the reply timeout, if shorter), so that the messages
        still on their way are not taken for lost."""
        w = self.w
        quiet = min(QUIET_NS, w.timeout_ns)
        return bool(self.subscribers) and now < drain_until and now - w.rec.last_rx < quiet

    def acked(self, free: np.ndarray, t: int, lat: list[tuple[int, np.ndarray | int]]) -> None:
        """The broker acked messages: their slots free; the latency of those sent in the
        measure window (from the intended send) into the ack histogram."""
        w = self.w
        w.pace.credit(free, t)
        start = w.times.measure
        for at, tint in lat:
            sent = np.asarray(tint, dtype=np.int64).reshape(-1)
            sent = sent[sent >= start]
            if len(sent):
                self.acks.record(at - sent)
                self.acked_n += len(sent)

    def finish(self, res: WorkerResult) -> None:
        """A node's expected deliveries are its subscribers': publishers are not counted
        among its receivers. The ack latency and the retained messages seen into the extras."""
        share, tp = self.w.share, self.w.tp
        if res.node_connected is not None:
            subs = ~np.asarray(share.sends, dtype=bool)
            up = tp.ready & subs
            res.node_connected = np.bincount(share.node[up], minlength=len(res.node_connected))
        res.extra["mqtt_ack"] = self.acks
        kept = self.w.proto.retained
        if kept:  # from the subscriber's connect to the read that brought it
            conn, t = np.asarray(kept, dtype=np.int64).T
            h = Histogram()
            h.record(np.maximum(t - tp.started[conn], 1))
            res.extra["mqtt_retained_msg"] = h


WIRE = MqttWire
