"""Socket.IO's part in a worker's step: emits from the payload template inside EVENT
packets, the transport with the Engine.IO and namespace handshake after the WebSocket
upgrade; at the end, the acks' times and the emits that got none."""

from __future__ import annotations

import ssl
from typing import Any

from harness.core.histogram import Histogram
from harness.core.result import Share, WorkerResult
from harness.protocols.sio.settings import SioOptions
from harness.protocols.sio.sio import SioProtocol, SioTemplate, SioTransport, sio_uri
from harness.protocols.wire import Wire
from harness.protocols.ws.handshake import WsOptions
from harness.protocols.ws.wstemplate import TextTemplate
from harness.wire.poller import Poller
from harness.wire.transport import Transport


class SioWire(Wire):
    def __init__(self, w: Any) -> None:
        super().__init__(w)
        plan = w.plan
        w.fixed = None  # the template's size, not the framing's
        self.sio: SioOptions = plan.options
        self.template = SioTemplate(TextTemplate(self.sio.payload, plan.size), self.sio)
        self.opts = WsOptions(tuple(sio_uri(t.scheme, t.host, t.port, t.path)
                                    for t in plan.targets))

    def protocol(self, key: int) -> SioProtocol:
        w = self.w
        return SioProtocol(w.framing, w.out, w.plan.max_frame, key, w.index, self.template,
                           self.sio, len(w.share.node))

    def transport(self, share: Share, sel: Poller, tls: ssl.SSLContext | None) -> Transport:
        w = self.w
        return SioTransport(share, w.addrs, w.plan.source_addrs, sel, w.rounds, w.proto, w,
                            opts=self.opts, sio=self.sio, size=self.template.size,
                            tls=self.layer(share, tls))

    def awaiting(self, now: int, drain_until: int) -> bool:
        """Acks still on their way (the last ones come after the room's deliveries), until
        the drain's end."""
        acks = self.w.proto.acks
        return acks is not None and acks.waiting > 0 and now < drain_until

    def finish(self, res: WorkerResult) -> None:
        """The acks of the window's emits: their times (from the intended send), and the
        emits that got none (``sio_no_ack``) or acks for no emit (``sio_ack_unknown``)."""
        w = self.w
        acks = w.proto.acks
        if acks is None:
            return
        lo = w.window_seq if w.window_seq < (1 << 62) else w.hi
        times, missing = acks.window(lo, w.hi)
        res.extra.setdefault("sio_ack", Histogram()).record(times)
        for kind, n in (("sio_no_ack", missing), ("sio_ack_unknown", acks.unknown)):
            if n:
                res.errors[kind] = res.errors.get(kind, 0) + n


WIRE = SioWire
