"""WebSocket's part in a worker's step: stamped frames inside binary messages, or JSON text
messages (``--ws-text``); the transport with the upgrade in its connect, pings, closes and
``--reconnect``; at the end, the reconnect episodes and permessage-deflate's counts."""

from __future__ import annotations

import ssl
from typing import Any

import numpy as np

from harness.core.result import Share, WorkerResult
from harness.protocols.wire import Wire
from harness.protocols.ws.handshake import ws_options
from harness.protocols.ws.settings import WsPlan, of_plan
from harness.protocols.ws.ws import WsTransport
from harness.protocols.ws.wsproto import WsProtocol
from harness.protocols.ws.wstext import TextProtocol, TextTemplate
from harness.wire.poller import Poller
from harness.wire.transport import Transport


class WsWire(Wire):
    def __init__(self, w: Any) -> None:
        super().__init__(w)
        plan = w.plan
        self.ws: WsPlan = of_plan(plan)  # its part of the plan (harness.protocols.ws.settings)
        self.reconnect = self.ws.reconnect
        if self.ws.text:
            w.fixed = None  # text messages: the template's size, not the framing's
        self.opts = ws_options(plan.targets, self.ws.subprotocol, self.ws.headers,
                               self.ws.ping_interval_s, self.ws.compress)

    def protocol(self, key: int) -> WsProtocol:
        """Stamped frames inside binary WebSocket messages, or JSON text messages with the
        stamp in a field (--ws-text)."""
        w, ws = self.w, self.ws
        plan, n = w.plan, len(w.share.node)
        if ws.text:
            return TextProtocol(w.framing, w.out, plan.max_frame, key, w.index,
                                TextTemplate(ws.text, plan.size), ws.match, n, ws.compress)
        return WsProtocol(w.framing, w.out, w.fixed, plan.max_frame, key, n, ws.compress)

    def transport(self, share: Share, sel: Poller, tls: ssl.SSLContext | None) -> Transport:
        w = self.w
        return WsTransport(share, w.addrs, w.plan.source_addrs, sel, w.rounds, w.proto, w,
                           opts=self.opts, tls=self.layer(share, tls))

    def restamp(self) -> tuple[int, bool, int, bool] | None:
        """Binary messages on a plain socket, uncompressed: each send's lag goes into the
        stamps inside its masked frames. Text (JSON) and compressed messages keep their
        round's time."""
        w = self.w
        if self.ws.text or self.ws.compress or w.tls is not None or \
                type(w.proto) is not WsProtocol:
            return None
        return w.out.hdr, False, 0, True

    def finish(self, res: WorkerResult) -> None:
        w = self.w
        tp, proto = w.tp, w.proto
        if tp.downtimes:
            res.reconnect.record(np.asarray(tp.downtimes, dtype=np.int64))
        if self.reconnect:
            res.episodes = tp.reconnects(w.times.measure)
        if proto.deflate is not None:
            res.tallies["ws_compress"] = dict(proto.deflate.counts)


WIRE = WsWire
