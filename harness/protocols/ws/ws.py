"""WebSocket (RFC 6455) over the stamped protocol: the protocol and transport of a ``ws://``
target.

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
import ssl
import time
from dataclasses import dataclass

import numpy as np
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from harness.core.units import SEC
from harness.protocols.tls import handshake_kind, reason
from harness.protocols.ws.wsdeflate import Deflate
from harness.protocols.ws.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    Deframer,
    encode_frame,
    mask_frames,
)
from harness.wire import stamp
from harness.wire.batch import Outbound, Parsed
from harness.wire.framing import Framing
from harness.wire.poller import READ
from harness.wire.protocol import Stamped
from harness.wire.transport import Reads, Transport

MAX_HEAD = 64 * 1024  # most bytes of a handshake response head
BACKOFF_NS = SEC // 10  # --reconnect: the first retry after 50-100 ms, then doubling
BACKOFF_CAP_NS = 2 * SEC  # ... to at most 1-2 s
CLOSE_WAIT_NS = SEC  # the end of a step waits this long for the servers' closes
HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class WsOptions:
    """What a worker needs for the handshakes: one URI per target, the subprotocol asked
    for ("" for none), and extra request headers."""

    uris: tuple[str, ...]
    subprotocol: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    ping_interval_ns: int = 0  # a ping on every open connection this often (0: none)
    compress: bool = False  # offer permessage-deflate (--ws-compress)


def handshake(uri: str, opts: WsOptions) -> tuple[ClientProtocol, bytes]:
    """A client protocol for ``uri`` and the bytes of its upgrade request."""
    sub = [Subprotocol(opts.subprotocol)] if opts.subprotocol else None
    ext = [ClientPerMessageDeflateFactory()] if opts.compress else None
    proto = ClientProtocol(parse_uri(uri), subprotocols=sub, extensions=ext, max_size=None)
    request = proto.connect()
    for name, value in opts.headers:
        request.headers[name] = value
    proto.send_request(request)
    return proto, b"".join(proto.data_to_send())


def handshake_result(proto: ClientProtocol, head: bytes) -> str | None:
    """Feed the response head (through its blank line): None when the connection is open,
    else the error kind (``connect_ws_<status>`` for a refusal, ``protocol``). A refusal is
    told by its status line (its body, if any, is not waited for)."""
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) >= 2 and status[0].startswith(b"HTTP/1.") and status[1].isdigit() \
            and len(status[1]) == 3 and status[1] != b"101":
        return f"connect_ws_{int(status[1])}"
    proto.receive_data(head)
    proto.events_received()
    if proto.handshake_exc is None and proto.state.name == "OPEN":
        return None
    return "protocol"


def refusal(head: bytes) -> str:
    """The status line of a refused handshake, for one line of diagnosis."""
    return head.split(b"\r\n", 1)[0].decode("latin-1", "replace")[:120]


class TlsFailed(Exception):
    """The probe's TLS handshake failed: its error kind (``tls_cert``, ...) and reason."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(f"{kind}: {why}")
        self.kind = kind
        self.why = why


def probe(family: int, addr: tuple, uri: str, opts: WsOptions, timeout_s: float,
          context: ssl.SSLContext | None = None, name: str = "") -> str | None:
    """One blocking handshake (after a TLS handshake with ``context`` and SNI ``name`` for
    wss://): None when it opens, else why not (the status line of a refusal, or what
    broke). A failed TLS handshake raises :class:`TlsFailed`."""
    proto, request = handshake(uri, opts)
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout_s)
        s.connect(addr)
        if context is not None:
            s = _secure(s, context, name)
        s.sendall(request)
        head = b""
        while HEAD_END not in head and len(head) < MAX_HEAD:
            got = s.recv(4096)
            if not got:
                return "the server closed the connection during the WebSocket handshake"
            head += got
    except OSError as exc:
        return f"WebSocket handshake failed: {exc.strerror or type(exc).__name__}"
    finally:
        s.close()
    head = head[:head.find(HEAD_END) + 4]
    return _verdict(proto, head)


def _secure(raw: socket.socket, context: ssl.SSLContext, name: str) -> ssl.SSLSocket:
    """The probe's TLS handshake on a connected blocking socket."""
    try:
        return context.wrap_socket(raw, server_hostname=name or None)
    except OSError as exc:
        kind = "tls_timeout" if isinstance(exc, TimeoutError) else handshake_kind(exc)
        raise TlsFailed(kind, reason(exc)) from None


def _verdict(proto: ClientProtocol, head: bytes) -> str | None:
    kind = handshake_result(proto, head)
    if kind is None:
        return None
    if kind.startswith("connect_ws_"):
        return f"WebSocket handshake refused: {refusal(head)}"
    return f"WebSocket handshake broken: {proto.handshake_exc or refusal(head)}"


class WsProtocol(Stamped):
    """Stamped messages inside binary WebSocket messages (one message, one stamped frame
    of the run's framing)."""

    def __init__(self, framing: Framing, out: Outbound, fixed: int | None, max_frame: int,
                 key: int, n: int = 0, deflate: bool = False) -> None:
        super().__init__(framing, out, fixed, max_frame, key)
        self.fixed = None  # every read is cut: WebSocket headers sit between payloads
        self.walks = True
        self.deframer = Deframer(max_frame, deflate)
        self.deflate = Deflate(n, max_frame) if deflate else None  # --ws-compress

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None,
            broken: list[int]) -> tuple[int, int]:
        assert walk is not None
        closes = len(self.deframer.closes)
        cut, keep, ok = self.deframer.cut(buf, i, start, end, walk)
        if not ok and len(self.deframer.closes) == closes:
            broken.append(i)
        return cut, keep

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        data, ends, kinds = self.out.build(gid, seq0, tint, delay)
        return (*self.frame(data, ends, idx, counts, OP_BINARY), kinds)

    def frame(self, data: memoryview, ends: np.ndarray, idx: np.ndarray, counts: np.ndarray,
              opcode: int) -> tuple[memoryview, np.ndarray]:
        """A round's messages as masked client frames (compressed where negotiated)."""
        d = self.deflate
        if d is not None and d.any:
            body, ends, ops = d.compress(data, ends, idx.repeat(counts), opcode)
            return mask_frames(memoryview(body), ends, ops)
        return mask_frames(data, ends, opcode)

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        """Each message of the round is one frame, whatever it holds: a message that is
        not a whole stamped frame (text, junk, a few bytes) is one bad frame, and the
        messages beside it parse as they are. The fixed-size fast path takes a round only
        when every message in it has the run's one size."""
        buf, seg_end, walk, bad = self.inflated(buf, seg_conn, seg_end, walk)
        assert walk is not None
        size = self.inbound.fixed
        p = self.inbound.parse(buf, seg_conn, seg_end, seg_t, walk) if size and \
            len(walk) * size == seg_end[-1] and _strided(walk, size) else None
        if p is None or p.bad_conns:  # (a foreign prefix ends a raw stream, not a message)
            p = self._messages(buf, seg_conn, seg_end, seg_t, walk)
        p.bad_conns.extend(bad)
        return p

    def _messages(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
                  seg_t: list[int], walk: list[int]) -> Parsed:
        """The round message by message (``walk``: where each starts): a message is a good
        frame when it holds a good stamp and its framing agrees with its length (the length
        prefix, or the newline that ends it)."""
        total = seg_end[-1]
        a = np.frombuffer(buf, dtype=np.uint8, count=total)
        fstart = np.asarray(walk, dtype=np.int64)
        fend = np.append(fstart[1:], total)
        seg = np.searchsorted(np.asarray(seg_end, dtype=np.int64), fstart, side="right")
        inb, fr = self.inbound, self.framing
        length = fend - fstart
        st, ok = stamp.from_bytes(a[np.minimum(fstart[:, None] + inb.cols, total - 1)],
                                  inb.ascii, self.inbound.key)
        ok &= length >= fr.header + inb.ss + fr.trailer
        if fr.header:
            prefix = np.zeros(len(fstart), dtype=np.int64)
            for j in range(fr.header):  # big-endian, a byte column at a time
                prefix = prefix << 8 | a[np.minimum(fstart + j, total - 1)]
            ok &= prefix == length - fr.header
        if fr.trailer:
            ok &= a[fend - 1] == 10
        return Parsed(np.asarray(seg_conn, dtype=np.int64)[seg],
                      np.asarray(seg_t, dtype=np.int64)[seg], st, ok, length, [])

    def inflated(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
                 walk: list[int] | None) -> tuple[bytearray, list[int], list[int] | None,
                                                  list[int]]:
        """The round with its compressed messages inflated (as is without any), and the
        connections whose inflation broke."""
        flags = self.deframer.compressed
        if self.deflate is None or flags is None or not any(flags) or walk is None:
            if flags:
                flags.clear()
            return buf, seg_end, walk, []
        out = self.deflate.inflate(buf, seg_conn, seg_end, walk, flags)
        flags.clear()
        return out

    def forget(self, i: int) -> None:
        if self.deflate is not None:
            self.deflate.forget(i)


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
        try:
            got = self._take(s)
        except self.would_block:
            return 0
        except OSError as exc:
            kind = self.error_kind(exc)
            self.fail(i, "connect_reset" if kind == "reset" else kind)
            return 1
        if not got:
            self.fail(i, "closed")
            return 1
        return self._head(i, self.head[i] + got)

    def _take(self, s: socket.socket) -> bytes:
        """The bytes of the response head that have come (with TLS, with what OpenSSL still
        holds of its record)."""
        got = s.recv(MAX_HEAD)
        while got and isinstance(s, ssl.SSLSocket) and s.pending():
            more = s.recv(s.pending())
            if not more:
                break
            got += more
        return got

    def opened(self, i: int, s: socket.socket, now: int) -> int:
        """TCP (and TLS) is up: write the upgrade request (0: not settled yet)."""
        return self._request(i, s)

    def _request(self, i: int, s: socket.socket) -> int:
        """Write the upgrade request and wait for its response (0), or fail (1)."""
        self.hs[i], request = handshake(self.opts.uris[int(self.node[i])], self.opts)
        try:
            s.send(request)  # a few hundred bytes into an empty socket buffer
        except OSError as exc:
            self.fail(i, self.error_kind(exc))
            return 1
        self.sel.modify(s, READ, i)
        return 0

    def _head(self, i: int, data: bytes) -> int:
        end = data.find(HEAD_END)
        if end < 0:
            if len(data) > MAX_HEAD:
                self.sink.unparsed(memoryview(data))
                self.fail(i, "protocol")
                return 1
            self.head[i] = data
            return 0
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
                self.send_raw(i, encode_frame(OP_PONG, payload, mask=True))
            d.pings.clear()
        if d.closes:
            now = time.monotonic_ns()
            for i, code in d.closes:
                if self.socks[i] is None:
                    continue
                self.sink.error(f"ws_close_{code}", 1, now)
                self.send_raw(i, encode_frame(OP_CLOSE, code.to_bytes(2, "big")
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
                self.send_raw(i, encode_frame(OP_PING, b"harness", mask=True))
        if not self.lost_at.any():
            return
        if not sending:
            self.retry_at[:] = 0
            return
        for i in np.flatnonzero((self.retry_at > 0) & (self.retry_at <= now)).tolist():
            self.retry_at[i] = 0
            self.started[i] = now
            self.start_connect(i)
        self.expire_connects(now, connect_timeout_ns)

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

    def send_raw(self, i: int, data: bytes) -> None:
        """Send ``data`` after whatever is queued (a control frame)."""
        if self.socks[i] is None:
            return
        if self.pend_out[i] is not None:
            self.pend_out[i] = bytes(self.pend_out[i] or b"") + data
            return
        self.send(i, memoryview(data))

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


def _strided(walk: list[int], size: int) -> bool:
    """Messages start every ``size`` bytes from 0 (all of the one size)."""
    if len(walk) <= 8:
        return walk == list(range(0, len(walk) * size, size))
    return bool((np.diff(np.asarray(walk, dtype=np.int64)) == size).all()) and walk[0] == 0


def _has_close(data: bytes) -> bool:
    """A server close frame among the last bytes (good enough at the end of a step: the
    data before it is dropped anyway)."""
    return bytes((0x80 | OP_CLOSE,)) in data[-130:]


def ws_options(targets: tuple, subprotocol: str, headers: tuple[tuple[str, str], ...],
               ping_interval_s: float = 0.0, compress: bool = False) -> WsOptions:
    """The options of a run's ws:// or wss:// targets."""
    uris = tuple(f"{t.scheme}://{_hostport(t.host, t.port)}{t.path or '/'}" for t in targets)
    return WsOptions(uris, subprotocol, headers, int(ping_interval_s * SEC), compress)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["WsOptions", "WsProtocol", "WsTransport", "probe", "ws_options"]
