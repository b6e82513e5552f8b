"""TLS as a layer between a transport and its protocol (as asyncio's sslproto): the client
context, and :class:`TlsLayer`, which any transport takes (``tls=``) for a step whose
connections speak TLS (an ``https://`` or ``wss://`` target, or ``--tls`` with
``host:port``). The transport keeps its connect, sends, frame cutting and its own handshake
(the WebSocket upgrade); the layer adds the TLS handshake between TCP connected and the
transport's :meth:`~harness.wire.transport.Transport.opened`, and its reads and send errors.

Per connection: the TCP connect as for plain TCP (its time is the connect histogram's), then
the socket is wrapped (SNI: the target's host name; none for an IP address, RFC 6066, which
``ssl`` then checks against the certificate's IP addresses) and ``do_handshake()`` is driven
by the selector, ``SSLWantRead`` / ``SSLWantWrite`` choosing what to wait for. Its time, from
TCP connected to handshake done, goes to the handshake histogram. A connection is alive (it
may send) only once its handshake is done, so pacing never sends on a handshaking socket.

Reads take records until OpenSSL wants more bytes from the socket or the round's chunk is
full; what OpenSSL still holds then (``pending()``), which select() cannot see, is read next
round without waiting. Sends are plain TCP's (the backlog path), with ``SSLWantWrite`` and
``SSLWantRead`` meaning "try again when writable": a retried write hands OpenSSL the same
bytes, as it requires.

Failures, each counted once: ``tls_cert`` (the certificate did not verify: unknown CA, wrong
host name, expired), ``tls_eof`` (the peer closed or reset the connection mid-handshake),
``tls_timeout`` (no handshake within ``--connect-timeout``), ``tls_handshake`` (any other
handshake failure: an alert, no common protocol version, not TLS at all), ``tls_error`` (a
TLS failure after the handshake: a bad record, an alert). The first reason of each kind is
kept for the diagnosis.

Times are ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import socket
import ssl
import time

import numpy as np

from harness.core.plan import Tls
from harness.wire.poller import READ, WRITE
from harness.wire.timer import Timer
from harness.wire.transport import CHUNK, Reads, Transport
from harness.wire.transport import error_kind as plain_error_kind

WOULD_BLOCK = (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError)


def client_context(tls: Tls, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A client context: verify against ``tls.ca_pem``, else the system store, or not at all
    (``insecure``); the host name is checked unless insecure."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.ca_pem:
        ctx.load_verify_locations(cadata=tls.ca_pem)
    else:
        ctx.load_default_certs()
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def handshake_kind(exc: OSError) -> str:
    """The error kind of a handshake that raised ``exc``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls_cert"
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError)):
        return "tls_eof"
    return "tls_handshake"


def reason(exc: OSError) -> str:
    """One short line for why TLS failed: "certificate verify failed: self-signed
    certificate", "wrong version number", "connection reset by peer"."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    why = getattr(exc, "reason", None)
    if why:
        return str(why).lower().replace("_", " ")
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def after_handshake_kind(exc: OSError) -> str:
    """The error kind of a send or recv that failed on an established TLS connection."""
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "closed"
    if isinstance(exc, ssl.SSLError):
        return "tls_error"
    return plain_error_kind(exc)


class TlsLayer:
    """TLS on a step's connections, for any transport: per connection, when TCP connected
    (the handshake's start; 0: not yet), and the connections whose plaintext OpenSSL holds.
    The transport calls :meth:`begin` once TCP is up, :meth:`handshake` on each event until
    done (then its own ``opened``), and takes :meth:`poll` and :meth:`read_round` as its own
    (chosen once, when it is built), ``would_block`` and ``error_kind`` for its sends."""

    would_block: type[OSError] | tuple[type[OSError], ...] = WOULD_BLOCK
    error_kind = staticmethod(after_handshake_kind)

    def __init__(self, context: ssl.SSLContext, names: list[str], n: int) -> None:
        self.context = context
        self.names = names  # server_hostname per target node
        self.tcp_at = np.zeros(n, dtype=np.int64)  # TCP connected (handshake began); 0
        self.carry: list[int] = []  # connections whose plaintext OpenSSL holds

    # ------------------------------------------------------------------ the handshake

    def begin(self, tp: Transport, i: int, s: socket.socket) -> int:
        """TCP connected: count its time, wrap the socket, begin the handshake. 1 when the
        connection is settled (failed, or the transport opened it)."""
        now = time.monotonic_ns()
        tp.sink.tcp_connected(now - int(tp.started[i]))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tp.sel.unregister(s)
        self.tcp_at[i] = now
        try:
            t = self.context.wrap_socket(s, server_hostname=self.names[int(tp.node[i])],
                                         do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            s.close()
            tp.socks[i] = None
            tp.sink.tls_failed("tls_handshake", str(exc))
            tp.fail(i, "tls_handshake")
            return 1
        tp.socks[i] = t
        tp.sel.register(t, READ, i)
        return self.handshake(tp, i)

    def handshake(self, tp: Transport, i: int) -> int:
        """One step of connection ``i``'s handshake; done: the transport's ``opened``."""
        s = tp.socks[i]
        assert isinstance(s, ssl.SSLSocket)
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            tp.sel.modify(s, READ, i)
            return 0
        except ssl.SSLWantWriteError:
            tp.sel.modify(s, WRITE, i)
            return 0
        except OSError as exc:
            kind = handshake_kind(exc)
            tp.sink.tls_failed(kind, reason(exc))
            tp.fail(i, kind)
            return 1
        return tp.opened(i, s, time.monotonic_ns())

    def late_kind(self, i: int) -> str:
        """A connect not done in time: in its handshake (``tls_timeout``), or before."""
        return "tls_timeout" if self.tcp_at[i] else "connect_timeout"

    def opened_in(self, i: int, now: int) -> int:
        """ns from TCP connected to ``now`` (the handshake histogram's time)."""
        return now - int(self.tcp_at[i])

    # ------------------------------------------------------------------ receive

    def poll(self, tp: Transport, wait_s: float, timer: Timer | None) -> list[int]:
        """As plain TCP's, with the connections whose plaintext OpenSSL holds (no wait)."""
        carry, self.carry = self.carry, []
        ready = tp.plain_poll(0.0 if carry else wait_s, timer)
        if carry:
            seen = set(ready)
            ready.extend(i for i in carry if i not in seen)
        return ready

    def read_round(self, tp: Transport, ready: list[int]) -> None:
        """Per ready connection: a handshake step, or its records read into the round
        buffer; then whole frames to the sink, as plain TCP's."""
        rb, r, off = tp.rounds, Reads(tp.protocol.walks), 0
        for k, i in enumerate(ready):
            if tp.socks[i] is None:
                continue
            if not tp.alive[i]:
                tp.finish_connect(i)
                continue
            off = self._read(tp, i, off, r)
            if off < 0:  # no room left: the rest next round
                self.carry.extend(ready[k:])
                break
        if r.conn:
            tp.sink.frames(rb.buf, r.conn, r.end, r.t, r.walk)
        for i in r.broken:
            if tp.socks[i] is not None:
                tp.fail(i, "protocol")

    def _read(self, tp: Transport, i: int, off: int, r: Reads) -> int:
        """Connection ``i``'s pending bytes, then the records it has (up to CHUNK bytes),
        at ``off``. Returns where the next read goes; -1: no room left this round."""
        s, p, rb = tp.socks[i], tp.pend_in[i], tp.rounds
        assert isinstance(s, ssl.SSLSocket)
        if off + len(p) + CHUNK > len(rb.buf):
            if off:
                return -1
            rb.grow(len(p) + CHUNK)
        start = off + len(p)
        rb.buf[off:start] = p
        end, eof = self._records(tp, i, s, start, start + CHUNK)
        if end < 0:
            return off
        if end == start and not eof:  # a record without data (a session ticket)
            return off
        if s.pending():
            self.carry.append(i)
        return tp._keep(i, off, end, time.monotonic_ns(), r)

    def _records(self, tp: Transport, i: int, s: ssl.SSLSocket, start: int,
                 stop: int) -> tuple[int, bool]:
        """Read records into ``buf[start:stop]`` until OpenSSL wants more from the socket:
        (where they end, EOF seen); (-1, False) when the connection failed."""
        mv, end = tp.rounds.mv, start
        try:
            while end < stop:
                n = s.recv_into(mv[end:stop])
                if not n:  # EOF: after data, seen again on the next read
                    return end, end == start
                end += n
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError as exc:
            kind = after_handshake_kind(exc)
            if kind in ("closed", "reset"):
                tp.hung_up(i, kind)
            else:
                tp.fail(i, kind)
            return -1, False
        return end, False
