"""Socket.IO v4 over WebSocket: the protocol and transport of a ``sio://`` target, built on
the WebSocket package (its upgrade, framing, pings, closes: harness.protocols.ws).

* The handshake (:class:`SioTransport`): the WebSocket upgrade to
  ``/socket.io/?EIO=4&transport=websocket``, then the server's Engine.IO open packet
  (checked: sid, pingInterval, pingTimeout, maxPayload), then the client's CONNECT to the
  namespace and the server's answer. A connection counts as connected (connect time
  includes all three) once the namespace took it. What breaks it is one error kind and a
  failed connect: ``sio_handshake`` (no valid open packet), ``sio_connect_error`` (the
  namespace refused), ``sio_max_payload`` (our emits would be over the server's
  maxPayload), ``sio_no_open`` / ``sio_no_connect`` (no open packet, no answer to CONNECT
  within the connect timeout).
* The data path (:class:`SioProtocol`): every emit is ``42/ns,["event",{..."stamp": ...}]``
  from the payload template (the JSON object of ``--ws-text``'s
  harness.protocols.ws.wstemplate), with a zero-padded ack id when acks are asked for; what
  comes back is cut by the WebSocket deframer and read packet by packet: our event's stamp
  is a delivery (matched by stamp, as text WebSocket messages are), other events and other
  namespaces are skipped, a server's ping is answered with a pong, an ack is matched by its
  id (:class:`AckBook`), and a DISCONNECT, an Engine.IO close or a CONNECT_ERROR ends the
  connection counted as ``sio_disconnect``, ``sio_close`` or ``sio_connect_error``. A packet
  that is not Engine.IO/Socket.IO (or a binary one) is one ``protocol`` error.

Sizes are bytes; times ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import time

import numpy as np
import orjson

from harness.protocols.sio import packet
from harness.protocols.sio.packet import Head, PacketError
from harness.protocols.sio.settings import SioOptions
from harness.protocols.ws.handshake import MAX_HEAD
from harness.protocols.ws.ws import WsTransport
from harness.protocols.ws.wsframe import OP_PONG, OP_TEXT, Deframer, encode_frame
from harness.protocols.ws.wstemplate import STAMP_FIELD, TextTemplate
from harness.protocols.ws.wstext import TextProtocol
from harness.wire import stamp
from harness.wire.batch import Outbound
from harness.wire.connects import hello_read
from harness.wire.framing import Framing
from harness.wire.inbound import Parsed

ACK_RING = 1 << 18  # acks awaited at once per worker, at most (an older one is forgotten)
_POW10 = 10 ** np.arange(packet.ACK_WIDTH - 1, -1, -1, dtype=np.int64)


class SioTemplate:
    """An emit's bytes: the EVENT packet around the payload template, and where its stamp
    (and ack id) go; the layout :class:`TextProtocol` writes a round of rows from."""

    def __init__(self, payload: TextTemplate, opts: SioOptions) -> None:
        head, self.ack_col = packet.event_prefix(opts.namespace, opts.event, opts.ack)
        self.row = np.concatenate((np.frombuffer(head, dtype=np.uint8), payload.row,
                                   np.frombuffer(b"]", dtype=np.uint8)))
        self.col = len(head) + payload.col
        self.size = len(self.row)


class AckBook:
    """Acks awaited, by ack id (a worker's message number): when each was intended to go
    (ns), and the acks that came: (id, ns from intended send to the ack)."""

    def __init__(self, cap: int = ACK_RING) -> None:
        self.ids = np.full(cap, -1, dtype=np.int64)
        self.t = np.zeros(cap, dtype=np.int64)
        self.got_ids: list[int] = []  # the latest acks (packed into ``chunks`` by the 64k)
        self.got_ns: list[int] = []
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.unknown = 0  # acks for no emit awaiting one (never sent, forgotten, twice)
        self.waiting = 0  # emits awaiting their ack

    def sent(self, ids: np.ndarray, t: np.ndarray | int) -> None:
        cap = len(self.ids)
        if len(ids) > cap:  # more than the ring holds: the first ones are forgotten at once
            ids, t = ids[-cap:], t[-cap:] if isinstance(t, np.ndarray) else t
        slot = ids % cap
        self.waiting += len(ids) - int(np.count_nonzero(self.ids[slot] >= 0))  # (forgotten)
        self.ids[slot] = ids
        self.t[slot] = t

    def got(self, ack: int, t: int) -> None:
        slot = ack % len(self.ids)
        if self.ids[slot] != ack:
            self.unknown += 1
            return
        self.ids[slot] = -1
        self.waiting -= 1
        self.got_ids.append(ack)
        self.got_ns.append(t - int(self.t[slot]))
        if len(self.got_ids) >= 1 << 16:
            self._pack()

    def _pack(self) -> None:
        """The latest acks as arrays (8 bytes a figure, not a Python int's 28)."""
        self.chunks.append((np.asarray(self.got_ids, dtype=np.int64),
                            np.asarray(self.got_ns, dtype=np.int64)))
        self.got_ids, self.got_ns = [], []

    def window(self, lo: int, hi: int) -> tuple[np.ndarray, int]:
        """The ack times (ns) of the emits ``lo <= id < hi``, and how many got none."""
        self._pack()
        ids = np.concatenate([c[0] for c in self.chunks])
        inside = (ids >= lo) & (ids < hi)
        return np.concatenate([c[1] for c in self.chunks])[inside], \
            max(hi - lo - int(np.count_nonzero(inside)), 0)


class SioProtocol(TextProtocol):
    """Stamped Socket.IO events over WebSocket, matched by stamp; the server's pings,
    acks and disconnects collected for the transport (``pings``, ``ends``)."""

    def __init__(self, framing: Framing, out: Outbound, max_frame: int, key: int,
                 worker: int, template: SioTemplate, opts: SioOptions, n: int = 0) -> None:
        super().__init__(framing, out, max_frame, key, worker, template, None, n)  # type: ignore[arg-type]
        self.opts = opts
        self.pings: list[int] = []  # connections the server pinged this round
        self.ends: list[tuple[int, str]] = []  # (connection, kind): the server ended it
        self.acks = AckBook() if opts.ack else None
        # our event as servers write it back: the short path of :meth:`_packets`
        self.head = packet.event_prefix(opts.namespace, opts.event, False)[0]

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        rows, ends, kinds = self.stamped.stamped(gid, seq0, tint, delay)
        if self.acks is not None:
            ids = np.arange(seq0, seq0 + len(gid), dtype=np.int64) & 0xFFFFFFFF  # stamp's seq
            at = self.template.ack_col  # type: ignore[attr-defined]
            rows[:, at:at + packet.ACK_WIDTH] = (ids[:, None] // _POW10 % 10 + 48)
            self.acks.sent(ids, tint)
        return (*self.frame(rows.data.cast("B"), ends, idx, counts, OP_TEXT), kinds)

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        assert walk is not None
        starts = np.asarray(walk, dtype=np.int64)
        ends = np.append(starts[1:], seg_end[-1])
        seg = np.searchsorted(np.asarray(seg_end, dtype=np.int64), starts, side="right")
        conn = np.asarray(seg_conn, dtype=np.int64)[seg]
        t = np.asarray(seg_t, dtype=np.int64)[seg]
        keep, raw = self._packets(buf, starts.tolist(), ends.tolist(), conn.tolist(),
                                  t.tolist())
        st, ok = stamp.from_bytes(raw, True, self.key)  # zeros (no stamp) fail the check
        return Parsed(conn[keep], t[keep], st, ok, (ends - starts)[keep], [])

    def _packets(self, buf: bytearray, starts: list[int], ends: list[int], conns: list[int],
                 times: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Which packets are deliveries of our event (or broken: counted), and the stamp
        digits of those (zeros: none); the others taken here (pings, acks, ends). Our event
        as we wrote it (``42["event",{...}]``, no ack id) takes a short path: its payload's
        JSON alone."""
        keep: list[bool] = []
        found: list[bytes] = []  # per packet kept, its stamp (56 digits, or 56 zeros)
        mv, head, lh = memoryview(buf), self.head, len(self.head)
        for a, b, i, t in zip(starts, ends, conns, times, strict=True):
            s = None
            if buf.startswith(head, a) and buf[b - 1] == 93:  # "]"
                s = _stamp_of(mv[a + lh:b - 1])
            if s is None:
                try:
                    s = self._packet(mv[a:b], i, t)
                except PacketError:
                    s = ""  # one protocol error (no stamp), the connection kept
            keep.append(s is not None)
            if s is not None:
                found.append(s.encode() if len(s) == stamp.ASCII_SIZE and s.isascii()
                             else ZEROS)
        raw = np.frombuffer(b"".join(found), dtype=np.uint8).reshape(-1, stamp.ASCII_SIZE)
        return np.asarray(keep, dtype=bool), raw

    def _packet(self, data: memoryview, i: int, t: int) -> str | None:
        """One packet: the stamp of our event ("" when it has none), else None."""
        head = packet.split(data)
        if head.eio != packet.EIO_MESSAGE:
            if head.eio == packet.EIO_PING:
                self.pings.append(i)
            elif head.eio == packet.EIO_CLOSE:
                self.ends.append((i, "sio_close"))
            return None
        if head.namespace != self.opts.namespace:
            return None
        if head.sio == packet.EVENT:
            return self._event(data, head)
        if head.sio == packet.ACK:
            if self.acks is not None and head.ack is not None:
                self.acks.got(head.ack, t)
        elif head.sio == packet.DISCONNECT:
            self.ends.append((i, "sio_disconnect"))
        elif head.sio == packet.CONNECT_ERROR:
            self.ends.append((i, "sio_connect_error"))
        return None

    def _event(self, data: memoryview, head: Head) -> str | None:
        args = packet.event_args(data, head)
        if args[0] != self.opts.event:
            return None  # another event (a welcome, a presence notice): not ours to count
        doc = args[1] if len(args) > 1 else None
        s = doc.get(STAMP_FIELD) if isinstance(doc, dict) else None
        return s if isinstance(s, str) else ""


class SioTransport(WsTransport):
    """The WebSocket transport with the Engine.IO and Socket.IO handshake after the
    upgrade (``phase`` 1: awaiting the open packet, 2: the namespace's answer), pongs to
    the server's pings and the ends it sends after each round."""

    def __init__(self, *args, sio: SioOptions, size: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.sio = sio
        self.size = size  # bytes of an emit: over the server's maxPayload, refused
        self.phase = np.zeros(self.n, dtype=np.int8)
        self.early_bytes: list[bytes] = [b""] * self.n  # a handshake's partial frames
        self.hs_frames = Deframer(self.protocol.max_frame)
        self.pong = encode_frame(OP_TEXT, packet.PONG, mask=True)
        self.opens: list[packet.Open] = []  # the open packets (the first few), for tests

    def close(self, i: int) -> None:
        self.phase[i] = 0
        self.early_bytes[i] = b""
        super().close(i)

    def late_kind(self, i: int) -> str:
        if self.phase[i]:
            return "sio_no_open" if self.phase[i] == 1 else "sio_no_connect"
        return super().late_kind(i)

    def finish_connect(self, i: int) -> int:
        """The WebSocket connect (ws's), then the Engine.IO and Socket.IO handshake: 1 when
        it settled (either way)."""
        s = self.socks[i]
        if s is None or not self.phase[i]:
            settled = super().finish_connect(i)
            return 0 if self.phase[i] else settled
        got = hello_read(self, i, MAX_HEAD, reset="reset")  # (TCP and the upgrade are done)
        return got if isinstance(got, int) else self._engine(i, self.early_bytes[i] + got)

    def _opened(self, i: int, now: int) -> None:
        """The upgrade is done: not open yet, the Engine.IO handshake begins (with the bytes
        that came after the upgrade's response)."""
        self.alive[i] = False
        self.phase[i] = 1
        rest, self.pend_in[i] = self.pend_in[i], b""
        if rest:
            self._engine(i, rest)

    def _engine(self, i: int, data: bytes) -> int:
        """Handshake bytes: its whole messages taken in order; 1 when it settled."""
        buf = bytearray(data)
        walk: list[int] = []
        d = self.hs_frames
        cut, keep, ok = d.cut(buf, i, 0, len(buf), walk)
        d.empty.clear()
        for _, payload in d.pings:
            self.send(i, encode_frame(OP_PONG, payload, mask=True))
        d.pings.clear()
        if d.closes:
            code = d.closes[0][1]
            d.closes.clear()
            self.fail(i, f"ws_close_{code}")
            return 1
        if not ok:
            self.sink.unparsed(memoryview(bytes(buf[cut:])))
            self.fail(i, "protocol")
            return 1
        bounds = list(zip(walk, [*walk[1:], cut], strict=True))
        for k, (a, b) in enumerate(bounds):
            try:
                done = self._handshake_packet(i, memoryview(buf)[a:b])
            except PacketError as exc:
                self.sink.unparsed(memoryview(bytes(buf[a:b])))
                self.fail(i, exc.kind)
                return 1
            if done:
                later = b"".join(encode_frame(OP_TEXT, bytes(buf[x:y]), mask=False)
                                 for x, y in bounds[k + 1:])
                return self._connected(i, later + bytes(buf[cut:keep]))
        self.early_bytes[i] = bytes(buf[cut:keep])
        return 0

    def _handshake_packet(self, i: int, data: memoryview) -> bool:
        """One packet of the handshake; True when the namespace took the connection."""
        if self.phase[i] == 1:
            opened = packet.parse_open(data)
            if opened.max_payload < self.size:
                raise PacketError(f"an emit of {self.size} bytes is over the server's "
                                  f"maxPayload ({opened.max_payload})", "sio_max_payload")
            if len(self.opens) < 8:
                self.opens.append(opened)
            self.phase[i] = 2
            self.send(i, encode_frame(OP_TEXT, packet.connect(self.sio.namespace),
                                          mask=True))
            return False
        head = packet.split(data)
        if head.eio == packet.EIO_PING:
            self.send(i, self.pong)
        elif head.eio == packet.EIO_CLOSE:
            raise PacketError("the server closed the session", "sio_close")
        elif head.eio == packet.EIO_MESSAGE and head.namespace == self.sio.namespace and \
                head.sio in (packet.CONNECT, packet.CONNECT_ERROR, packet.DISCONNECT):
            why = packet.connect_reply(data, head)
            if why is not None:
                raise PacketError(f"namespace {self.sio.namespace} refused: {why}",
                                  "sio_connect_error")
            return True
        return False

    def _connected(self, i: int, rest: bytes) -> int:
        """The namespace took connection ``i``: open, as ws's connections are once upgraded
        (``rest``: the frames that came after, read as the connection's first bytes)."""
        self.phase[i] = 0
        self.early_bytes[i] = b""
        self.alive[i] = True
        self.pend_in[i] = rest
        super()._opened(i, time.monotonic_ns())
        return 1

    def _control(self) -> None:
        """ws's control frames, then the round's Engine.IO pings (a pong each) and the
        sessions the server ended (counted by kind, closed)."""
        super()._control()
        proto = self.protocol
        assert isinstance(proto, SioProtocol)
        if proto.pings:
            for i in proto.pings:
                self.send(i, self.pong)
            proto.pings.clear()
        if proto.ends:
            now = time.monotonic_ns()
            for i, kind in proto.ends:
                if self.socks[i] is not None:
                    self.sink.error(kind, 1, now)
                    self.close(i)
            proto.ends.clear()


ZEROS = bytes(stamp.ASCII_SIZE)  # no stamp: fails the check


def _stamp_of(payload: memoryview) -> str | None:
    """The stamp of our event's payload (a JSON object), "" when it has none; None when it
    is not a JSON object alone (the careful path then reads the packet)."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    s = doc.get(STAMP_FIELD)
    return s if isinstance(s, str) else ""


def sio_uri(scheme: str, host: str, port: int, path: str) -> str:
    """The WebSocket URI of a ``sio://`` (``sios://``) target: its path ("/socket.io/"
    unless given) with ``EIO=4&transport=websocket`` added to its query."""
    ws = "wss" if scheme == "sios" else "ws"
    where, _, query = (path if path not in ("", "/") else "/socket.io/").partition("?")
    extra = "&".join(q for q in ("EIO=4", "transport=websocket")
                     if q.split("=")[0] + "=" not in query)
    query = "&".join(q for q in (query, extra) if q)
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{ws}://{hostport}{where}?{query}"
