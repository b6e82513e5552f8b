"""TLS over the transport: the client context, and :class:`TlsTransport`, the transport of a
step whose connections speak TLS (an ``https://`` target, or ``--tls`` with ``host:port``).

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

from harness.plan import Tls
from harness.poller import READ, WRITE, Poller
from harness.protocol import Stamped
from harness.result import Share
from harness.timer import Timer
from harness.transport import CHUNK, Reads, RoundBuffer, Sink, Transport, connect_kind
from harness.transport import error_kind as plain_error_kind

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


class TlsTransport(Transport):
    """The transport of a TLS step: plain TCP's connect, sends and frame cutting, with the
    handshake between connect and data, and reads that drain what OpenSSL holds."""

    would_block = WOULD_BLOCK
    error_kind = staticmethod(after_handshake_kind)

    def __init__(self, share: Share, addrs: list[tuple], sources: tuple[str, ...],
                 sel: Poller, rounds: RoundBuffer, protocol: Stamped,
                 sink: Sink, *, context: ssl.SSLContext, names: list[str]) -> None:
        super().__init__(share, addrs, sources, sel, rounds, protocol, sink)
        self.context = context
        self.names = names  # server_hostname per target node
        self.tcp_at = np.zeros(self.n, dtype=np.int64)  # TCP connected (handshake began); 0
        self.carry: list[int] = []  # connections whose plaintext OpenSSL holds

    # ------------------------------------------------------------------ the handshake

    def finish_connect(self, i: int) -> int:
        """An event on a connection not yet alive: its TCP connect settled (wrap it and begin
        the handshake), or its handshake can go on. 1 when the connection is settled."""
        s = self.socks[i]
        if s is None or self.alive[i]:
            return 0
        if not self.tcp_at[i]:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(i, connect_kind(err))
                return 1
            if not self._wrap(i, s):
                return 1
        return self._handshake(i)

    def _wrap(self, i: int, s: socket.socket) -> bool:
        """TCP connected: count its time, wrap the socket. False when wrapping failed."""
        now = time.monotonic_ns()
        self.sink.tcp_connected(now - int(self.started[i]))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sel.unregister(s)
        self.tcp_at[i] = now
        try:
            t = self.context.wrap_socket(s, server_hostname=self.names[int(self.node[i])],
                                         do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            s.close()
            self.socks[i] = None
            self.sink.tls_failed("tls_handshake", str(exc))
            self.fail(i, "tls_handshake")
            return False
        self.socks[i] = t
        self.sel.register(t, READ, i)
        return True

    def _handshake(self, i: int) -> int:
        s = self.socks[i]
        assert isinstance(s, ssl.SSLSocket)
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            self.sel.modify(s, READ, i)
            return 0
        except ssl.SSLWantWriteError:
            self.sel.modify(s, WRITE, i)
            return 0
        except OSError as exc:
            kind = handshake_kind(exc)
            self.sink.tls_failed(kind, reason(exc))
            self.fail(i, kind)
            return 1
        return self.secured(i, s)

    def secured(self, i: int, s: ssl.SSLSocket) -> int:
        """The TLS handshake is done: the connection may send (1: settled).
        harness.protocols.ws.ws's wss transport writes its upgrade request here instead."""
        self.alive[i] = True
        self.sel.modify(s, READ, i)
        self.sink.handshaken(i, time.monotonic_ns() - int(self.tcp_at[i]))
        return 1

    def late_kind(self, i: int) -> str:
        return "tls_timeout" if self.tcp_at[i] else "connect_timeout"

    def close(self, i: int) -> None:
        super().close(i)
        self.tcp_at[i] = 0

    # ------------------------------------------------------------------ receive

    def poll(self, wait_s: float, timer: Timer | None) -> list[int]:
        """As plain TCP's, with the connections whose plaintext OpenSSL holds (no wait)."""
        carry, self.carry = self.carry, []
        ready = super().poll(0.0 if carry else wait_s, timer)
        if carry:
            seen = set(ready)
            ready.extend(i for i in carry if i not in seen)
        return ready

    def read_round(self, ready: list[int]) -> None:
        """Per ready connection: a handshake step, or its records read into the round
        buffer; then whole frames to the sink, as plain TCP's."""
        rb, r, off = self.rounds, Reads(self.protocol.walks), 0
        for k, i in enumerate(ready):
            if self.socks[i] is None:
                continue
            if not self.alive[i]:
                self.finish_connect(i)
                continue
            off = self._read(i, off, r)
            if off < 0:  # no room left: the rest next round
                self.carry.extend(ready[k:])
                break
        if r.conn:
            self.sink.frames(rb.buf, r.conn, r.end, r.t, r.walk)
        for i in r.broken:
            if self.socks[i] is not None:
                self.fail(i, "protocol")

    def _read(self, i: int, off: int, r: Reads) -> int:
        """Connection ``i``'s pending bytes, then the records it has (up to CHUNK bytes),
        at ``off``. Returns where the next read goes; -1: no room left this round."""
        s, p, rb = self.socks[i], self.pend_in[i], self.rounds
        assert isinstance(s, ssl.SSLSocket)
        if off + len(p) + CHUNK > len(rb.buf):
            if off:
                return -1
            rb.grow(len(p) + CHUNK)
        start = off + len(p)
        rb.buf[off:start] = p
        end, stop, eof = start, start + CHUNK, False
        try:
            while end < stop:
                n = s.recv_into(rb.mv[end:stop])
                if not n:  # EOF: after data, seen again on the next read
                    eof = end == start
                    break
                end += n
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError as exc:
            kind = after_handshake_kind(exc)
            if kind in ("closed", "reset"):
                self.hung_up(i, kind)
            else:
                self.fail(i, kind)
            return off
        if end == start and not eof:  # a record without data (a session ticket)
            return off
        if s.pending():
            self.carry.append(i)
        return self._keep(i, off, end, time.monotonic_ns(), r)
