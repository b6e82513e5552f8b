"""A protocol's part in a worker's step (its ``Spec.wire``): the factory of its sans-I/O
protocol object, its transport (with its handshake, if any), and its hooks after a round and
at the end of a step. harness.worker.worker builds one per run with :func:`wire_of` and calls these
instead of asking which protocol it runs.

``w`` is the worker (harness.worker.worker.Worker): a wire reads its plan, share, framing,
outbound messages and recorder, as the worker's own methods would.
"""

from __future__ import annotations

import importlib
import ssl
from collections.abc import Callable
from typing import Any

from harness.core.result import Share, WorkerResult
from harness.protocols.spec import Spec
from harness.protocols.tls import TlsLayer
from harness.wire.inbound import Parsed
from harness.wire.poller import Poller
from harness.wire.protocol import InOrder, Stamped, protocol_for
from harness.wire.transport import Transport

AfterRound = Callable[[Parsed, int], None]  # (the round's frames, its last receive time, ns)


class Wire:
    """Raw TCP's wire (stamped frames in the run's framing, matched by stamp or in order),
    which the others extend. ``after_round``: called with each round's parsed frames, or
    None (nothing to count beyond the frames). ``reconnect``: the worker reopens a
    connection that closed while the step sends (its transport's ``schedule``), as
    WebSocket's ``--reconnect`` asks."""

    alpn: tuple[str, ...] = ()  # the protocols a TLS handshake offers (ALPN)
    reconnect: bool = False  # reopen, with backoff, a connection the server dropped (ws)

    def __init__(self, w: Any) -> None:
        self.w = w
        self.after_round: AfterRound | None = None

    def protocol(self, key: int) -> Stamped:
        w = self.w
        return protocol_for(w.matching, w.framing, w.out, w.fixed, w.plan.max_frame, key,
                            len(w.share.node), w.index)

    def transport(self, share: Share, sel: Poller, tls: ssl.SSLContext | None) -> Transport:
        """The step's transport (over TLS when the run gives a context)."""
        w = self.w
        return Transport(share, w.addrs, w.plan.source_addrs, sel, w.rounds, w.proto, w,
                         tls=self.layer(share, tls))

    def layer(self, share: Share, tls: ssl.SSLContext | None) -> TlsLayer | None:
        """TLS between the transport and the protocol, when the run gives a context (SNI:
        each target's host name)."""
        if tls is None:
            return None
        return TlsLayer(tls, [t.host for t in self.w.plan.targets], len(share.node))

    def joined(self, tp: Transport) -> None:
        """The step's transport is built (a hook: HTTP takes the servers' closes)."""

    def restamp(self) -> tuple[int, bool, int, bool] | None:
        """How a round's sends restamp their messages with each send's lag
        (harness.wire.restamp): (stamp offset, ASCII, message size or 0, inside WebSocket
        frames), or None where messages keep their round's time; on a plain socket,
        stamped frames as such, and in-order protocols' kept stamps (offset -1)."""
        w = self.w
        if type(w.tp) is not Transport or w.tls is not None:
            return None
        if isinstance(w.proto, InOrder):  # stamps kept here: the lags alone (add_lags)
            return -1, False, 0, False
        if type(w.proto) is not Stamped:
            return None
        return w.out.hdr, w.out.ascii, int(w.out.specs[0]) if w.out.fixed else 0, False

    def early_request(self) -> bytes | None:
        """The one fixed request a connection may send as soon as its replies are read
        (harness.wire.rounds.Early), or None."""
        return None

    def few_code(self, n: int) -> int | None:
        """A small in-order round of ``n`` replies, one a read, is booked in lists
        (Events._ordered_few) when the protocol would count nothing of its own in it: then
        the one code its replies share, else None (numpy's parse takes it). No side effect:
        :meth:`book_few` books the code once the replies are taken. Never here."""
        return None

    def book_few(self, code: int, n: int) -> None:
        """The round :meth:`few_code` allowed was taken: its ``n`` replies' code counted."""

    def awaiting(self, now: int, drain_until: int) -> bool:
        """The drain is otherwise over: whether the protocol still awaits something of its
        own (Socket.IO: acks), at most until ``drain_until`` (ns). A hook: never here."""
        return False

    def finish(self, res: WorkerResult) -> None:
        """The step is over: its extras into the result."""


WIRE = Wire


def wire_of(spec: Spec, w: Any) -> Wire:
    """The wire a protocol's spec names (``module:attribute``), built for worker ``w``."""
    module, _, name = spec.wire.partition(":")
    cls: type[Wire] = getattr(importlib.import_module(module), name)
    return cls(w)
