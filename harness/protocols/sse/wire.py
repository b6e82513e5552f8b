"""SSE's part in a worker's step: event streams in (the transport's sockets), stamped POSTs
out (a second connection per sender), deliveries matched by stamp; a stream the server ends
is reopened with ``Last-Event-ID`` and counted as a reconnect."""

from __future__ import annotations

import ssl
import time
from typing import Any

from harness.core.result import Share
from harness.core.units import SEC
from harness.protocols.sse.options import SseOptions
from harness.protocols.sse.post import PostRequests
from harness.protocols.sse.protocol import SseProtocol
from harness.protocols.sse.transport import SseTransport, StreamSetup, get_request
from harness.protocols.wire import Wire
from harness.protocols.ws.wstemplate import TextTemplate
from harness.wire.poller import Poller
from harness.wire.transport import Transport


def host_of(t: Any) -> str:
    return f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}"


class SseWire(Wire):
    def __init__(self, w: Any) -> None:
        super().__init__(w)
        plan = w.plan
        w.fixed = None  # POSTs of the body template's size, not the framing's
        opts = plan.options if isinstance(plan.options, SseOptions) else SseOptions()
        self.template = TextTemplate(opts.body, int(plan.size))
        self.post_path = opts.post
        self.event = opts.event
        self.setup = StreamSetup(tuple(get_request(host_of(t), t.path or "/")
                                     for t in plan.targets), int(plan.timeout_s * SEC))

    def protocol(self, key: int) -> SseProtocol:
        w = self.w
        first = w.plan.targets[0]
        requests = PostRequests(host_of(first), self.post_path, self.template, w.index, key)
        return SseProtocol(w.framing, w.out, w.plan.max_frame, key, len(w.share.node),
                           requests, self.event)

    def transport(self, share: Share, sel: Poller, tls: ssl.SSLContext | None) -> Transport:
        w = self.w
        return SseTransport(share, w.addrs, w.plan.source_addrs, sel, w.rounds, w.proto, w,
                            opts=self.setup)

    def joined(self, tp: Transport) -> None:
        assert isinstance(tp, SseTransport)
        tp.reopen = self.reopen

    def reopen(self, i: int) -> None:
        """The server ended stream ``i``: closed, and while the step runs reopened after its
        retry (the worker takes it as reconnecting, not lost)."""
        w = self.w
        tp = w.tp
        tp.close(i)
        if w.running:
            w.down[i] = False
            w.reconnecting[i] = True
            tp.reopen_at(i, time.monotonic_ns())


WIRE = SseWire
