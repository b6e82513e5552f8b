"""WebSocket (RFC 6455) over the stamped protocol: the transport of a ``ws://`` target (its
handshake is harness.protocols.ws.handshake's, its protocol harness.protocols.ws.wsproto's).

* The opening handshake is the ``websockets`` library's sans-I/O ``ClientProtocol``: it
  writes the upgrade request (with ``--ws-subprotocol`` and ``--header`` lines) and checks
  the response (status 101, ``Sec-WebSocket-Accept``, the subprotocol). Only the response
  head is fed to it; frames after it are ours. A connection counts as connected once its
  handshake is done (connect time includes it). A refusal with an HTTP status is counted
  as ``connect_ws_<status>`` (a failed connect); a response that breaks the handshake (a
  wrong accept key) as ``protocol``.
* Data frames are :mod:`harness.protocols.ws.wsframe`'s: every message of a round masked at
  once on the way out; server frames cut in place on the way in, so the round buffer holds
  back-to-back payloads, each the stamped frame raw TCP would carry, parsed by
  :class:`~harness.wire.protocol.Stamped` unchanged.
* Pings are answered with pongs after each round. A server's close frame is counted by its
  code (``ws_close_1001``), answered and the connection closed. At the end of a step every
  open connection sends a close frame (1000) and waits (at most ``CLOSE_WAIT_NS``) for the
  server's.

wss:// is the same transport given harness.protocols.tls's layer (``tls=``): the TCP
connect, then the TLS handshake, then this upgrade (:meth:`WsTransport.opened`) and these
frames over the TLS socket, read by the layer. The handshake histogram then runs from TCP
connected to the WebSocket open (both handshakes), so connect plus handshake is the time
until a connection may send, as for ws:// (where connect includes the upgrade).

Sizes are bytes; times ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time

import numpy as np
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
)

from harness.core.units import SEC
from harness.protocols.ws.handshake import (
    HEAD_END,
    MAX_HEAD,
    WsOptions,
    handshake,
    handshake_result,
)
from harness.protocols.ws.wsframe import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    encode_frame,
)
from harness.protocols.ws.wsproto import WsProtocol
from harness.wire.connects import expire_connects, head_kept, hello_read, hello_send
from harness.wire.transport import Reads, Transport

BACKOFF_NS = SEC // 10  # --reconnect: the first retry after 50-100 ms, then doubling
BACKOFF_CAP_NS = 2 * SEC  # ... to at most 1-2 s
CLOSE_WAIT_NS = SEC  # the end of a step waits this long for the servers' closes


class WsTransport(Transport):
    """The transport with the WebSocket handshake in its connect, pongs and server closes
    after each round, and the close handshake at the end."""

    def __init__(self, *args, opts: WsOptions, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.opts = opts
        self.hs: list[ClientProtocol | None] = [None] * self.n
        self.head: list[bytes] = [b""] * self.n
        proto = self.protocol
        assert isinstance(proto, WsProtocol)
        self.deframer = proto.deframer
        self.next_ping = time.monotonic_ns() + opts.ping_interval_ns
        n = self.n  # --reconnect: when each retry is due, tries so far, when it was lost
        self.retry_at = np.zeros(n, dtype=np.int64)
        self.tries = np.zeros(n, dtype=np.int64)
        self.lost_at = np.zeros(n, dtype=np.int64)
        self.downtimes: list[int] = []  # ns from each loss to the handshake done again
        self.back_from = np.zeros(n, dtype=np.int64)  # back, awaiting its first message:
        self.back_at = np.zeros(n, dtype=np.int64)  # ... when it was lost, when back (or 0)
        self.episodes: list[tuple[int, int, int]] = []  # (lost, back, delivering) ns; 0: not
        self.rng = np.random.default_rng()

    def close(self, i: int) -> None:
        if self.back_at[i]:  # lost again before a message came: that episode never delivered
            self.episodes.append((int(self.back_from[i]), int(self.back_at[i]), 0))
            self.back_at[i] = 0
        self.hs[i] = None
        self.head[i] = b""
        super().close(i)

    # ------------------------------------------------------------------ the handshake

    def finish_connect(self, i: int) -> int:
        """The connect (and with TLS its handshake) as the transport's, which then writes the
        upgrade request (:meth:`opened`). Then (readable): read the response head; 1 when
        the handshake settled (either way)."""
        s = self.socks[i]
        if s is None or self.alive[i]:
            return 0
        if self.hs[i] is None:
            return super().finish_connect(i)
        got = hello_read(self, i, MAX_HEAD)
        return got if isinstance(got, int) else self._head(i, self.head[i] + got)

    def opened(self, i: int, s: socket.socket, now: int) -> int:
        """TCP (and TLS) is up: write the upgrade request (0: not settled yet)."""
        return self._request(i, s)

    def _request(self, i: int, s: socket.socket) -> int:
        """Write the upgrade request and wait for its response (0), or fail (1)."""
        self.hs[i], request = handshake(self.opts.uris[int(self.node[i])], self.opts)
        return hello_send(self, i, s, request)

    def _head(self, i: int, data: bytes) -> int:
        end = data.find(HEAD_END)
        if end < 0:
            return head_kept(self, self.head, i, data, MAX_HEAD)
        proto = self.hs[i]
        assert proto is not None
        kind = handshake_result(proto, data[:end + 4])
        if kind is not None:
            self.sink.unparsed(memoryview(data[:end + 4]))
            self.fail(i, kind)
            return 1
        self.head[i] = b""
        self._negotiated(i, proto)
        self.pend_in[i] = data[end + 4:]  # frames sent right after the handshake
        self.alive[i] = True
        now = time.monotonic_ns()
        if self.lost_at[i]:  # back after --reconnect
            self.downtimes.append(now - int(self.lost_at[i]))
            self.back_from[i], self.back_at[i] = self.lost_at[i], now
            self.lost_at[i] = self.tries[i] = 0
            self.sink.reconnected(now)
        self._opened(i, now)
        return 1

    def _opened(self, i: int, now: int) -> None:
        """The handshake is done: the connection may send; connect time includes it (with
        TLS: the handshake time, from TCP connected, includes both handshakes)."""
        if self.tls is None:
            self.sink.connected(i, now - int(self.started[i]))
        else:
            self.sink.handshaken(i, self.tls.opened_in(i, now))

    def late_kind(self, i: int) -> str:
        return "connect_timeout" if self.hs[i] is not None else super().late_kind(i)

    def _negotiated(self, i: int, proto: ClientProtocol) -> None:
        """permessage-deflate, when the server took it, from now on this connection."""
        deflate = getattr(self.protocol, "deflate", None)
        if deflate is not None:
            for ext in proto.extensions:
                if isinstance(ext, PerMessageDeflate):
                    deflate.open(i, ext)

    def flush(self, i: int) -> None:
        if not self.alive[i] and self.hs[i] is not None:
            return  # a handshake waits for its response (readable), not writability
        super().flush(i)

    # ------------------------------------------------------------------ a round

    def read_round(self, ready: list[int]) -> None:
        """The transport's ``read_round``: handshakes go on, the open connections' frames
        are read (by TCP's reads, or the TLS layer's), then the round's control frames."""
        alive = self.alive
        opening = [i for i in ready if not alive[i]]
        for i in opening:
            self.finish_connect(i)
        super().read_round([i for i in ready if alive[i]] if opening else ready)
        self._control()

    def _control(self) -> None:
        """Count the round's empty messages; answer its pings; count, answer and close the
        servers' closes."""
        d = self.deframer
        if d.empty:  # empty messages: each one protocol error, the connection kept
            self.sink.error("protocol", len(d.empty), time.monotonic_ns())
            d.empty.clear()
        if d.pings:
            for i, payload in d.pings:
                self.send(i, encode_frame(OP_PONG, payload, mask=True))
            d.pings.clear()
        if d.closes:
            now = time.monotonic_ns()
            for i, code in d.closes:
                if self.socks[i] is None:
                    continue
                self.sink.error(f"ws_close_{code}", 1, now)
                self.send(i, encode_frame(OP_CLOSE, code.to_bytes(2, "big")
                                              if code != 1005 else b"", mask=True))
                self.close(i)
            d.closes.clear()

    def tick(self, now: int, sending: bool, connect_timeout_ns: int) -> None:
        """Every ~100 ms: pings when due (--ping-interval); reconnects when due
        (--reconnect, while sending), and their connect timeouts."""
        every = self.opts.ping_interval_ns
        if every and now >= self.next_ping:
            self.next_ping = now + every
            for i in np.flatnonzero(self.alive).tolist():
                self.send(i, encode_frame(OP_PING, b"harness", mask=True))
        if not self.lost_at.any():
            return
        if not sending:
            self.retry_at[:] = 0
            return
        for i in np.flatnonzero((self.retry_at > 0) & (self.retry_at <= now)).tolist():
            self.retry_at[i] = 0
            self.started[i] = now
            self.start_connect(i)
        expire_connects(self, now, connect_timeout_ns)

    def schedule(self, i: int, now: int) -> bool:
        """Connection ``i`` was lost: retry after a backoff (doubling from BACKOFF_NS to
        BACKOFF_CAP_NS, each drawn from its upper half). False: it has been down over 60 s
        (or 12 tries without a handshake): given up, counted ``reconnect_gave_up``."""
        if not self.lost_at[i]:
            self.lost_at[i] = now
        if now - self.lost_at[i] > 60 * SEC or self.tries[i] >= 12:
            self.sink.error("reconnect_gave_up", 1, now)
            self.episodes.append((int(self.lost_at[i]), 0, 0))
            self.lost_at[i] = 0
            return False
        wait = min(BACKOFF_NS << int(self.tries[i]), BACKOFF_CAP_NS)
        self.tries[i] += 1
        self.retry_at[i] = now + int(wait * (0.5 + 0.5 * self.rng.random()))
        return True

    def _keep(self, i: int, start: int, end: int, t: int, r: Reads) -> int:
        """As the transport's; a connection back after --reconnect is delivering again once
        a read brings it a message (its episode then complete)."""
        cut = super()._keep(i, start, end, t, r)
        if cut > start and self.back_at[i]:
            self.episodes.append((int(self.back_from[i]), int(self.back_at[i]), t))
            self.back_at[i] = 0
        return cut

    def reconnects(self, origin: int) -> np.ndarray:
        """Every --reconnect episode of the step as (lost, back, delivering again) rows, s
        after ``origin`` (ns); NaN where it did not happen (still down, gave up, or back but
        no message yet)."""
        rows = list(self.episodes)
        rows += [(int(self.back_from[i]), int(self.back_at[i]), 0)
                 for i in np.flatnonzero(self.back_at).tolist()]
        rows += [(int(t), 0, 0) for t in self.lost_at[self.lost_at > 0].tolist()]
        ns = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        return np.where(ns > 0, (ns - origin) / SEC, np.nan)

    # ------------------------------------------------------------------ the end

    def close_all(self) -> None:
        """The close handshake: a close frame (1000) on every open connection, then wait
        (bounded) for the servers' close frames or their hang-ups, and close."""
        waiting = {}
        frame = encode_frame(OP_CLOSE, (1000).to_bytes(2, "big"), mask=True)
        for i in np.flatnonzero(self.alive).tolist():
            s = self.socks[i]
            if s is None or self.pend_out[i] is not None:
                continue
            with contextlib.suppress(OSError):
                s.send(frame)
                waiting[s.fileno()] = s
        self._await_closes(waiting)
        super().close_all()

    def _await_closes(self, waiting: dict[int, socket.socket]) -> None:
        """Read (and drop) until each socket gives EOF or a close frame, or the time is up."""
        deadline = time.monotonic_ns() + CLOSE_WAIT_NS
        poller = selectors.DefaultSelector()
        for s in waiting.values():
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s)
            poller.register(s, selectors.EVENT_READ)
        try:
            while waiting and time.monotonic_ns() < deadline:
                for key, _ in poller.select(0.05):
                    s = waiting[key.fd]
                    try:
                        got = s.recv(65536)
                    except self.would_block:
                        continue
                    except OSError:
                        got = b""
                    if not got or _has_close(got):
                        poller.unregister(s)
                        waiting.pop(s.fileno(), None)
        finally:
            poller.close()


def _has_close(data: bytes) -> bool:
    """A server close frame among the last bytes (good enough at the end of a step: the
    data before it is dropped anyway)."""
    return bytes((0x80 | OP_CLOSE,)) in data[-130:]


__all__ = ["WsOptions", "WsProtocol", "WsTransport"]
