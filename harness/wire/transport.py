"""Transport: one step's socket table, the selector and the round buffer. Connect,
finish-connect, close, send, queue, flush, read a round. It knows bytes, never what they
mean: each read's bytes go to the protocol's ``cut`` (whole frames stay in the round
buffer, a partial tail waits in the connection's pending bytes), and the round's whole
frames, with one clock read per ``recv``, go to the sink once per round. Every failure
goes through :meth:`Transport.fail`.

Connections are local numbers ``0..n-1``; a socket rides in the poller
(:class:`harness.wire.poller.Poller`) as its number. Times are ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable

import numpy as np
from mypy_extensions import mypyc_attr

from harness.core.pools import source_index
from harness.core.result import Share
from harness.wire import hot
from harness.wire.hot import CAREFUL, DONE, FAILED, QUEUE, recv_fixed, recv_tmpl, send_bounds
from harness.wire.poller import READ, WRITE, Poller
from harness.wire.protocol import Stamped
from harness.wire.rounds import CHUNK, ROUND_BUF, Early, Reads, RoundBuffer, read_carefully
from harness.wire.sink import CONNECT_KINDS, Layer, Sink, connect_kind, error_kind
from harness.wire.timer import Timer

# (re-exported: the protocols' transports import them from here with Transport)
__all__ = ["CHUNK", "CONNECT_KINDS", "ROUND_BUF", "STREAM_NONBLOCK", "TIMER", "Early", "Layer",
           "Reads", "RoundBuffer", "Sink", "Transport", "connect_kind", "error_kind"]

TIMER = -1  # the timerfd's number in the poller
STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK  # (Linux, as epoll)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2
NO_READS = Reads(False)  # a round that sends nothing early (never appended to)


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed in pure modules
class Transport:
    """One step's connections: sockets, pending bytes both ways, and which are open.
    ``would_block`` and ``error_kind`` (looked up only when a send raises) are what a send's
    exceptions mean; a layer (TLS) gives its own, and its ``poll`` and ``read_round`` replace
    the transport's: the plain ones below stay free of any test for TLS."""

    would_block: type[OSError] | tuple[type[OSError], ...] = BlockingIOError
    error_kind = staticmethod(error_kind)

    def __init__(self, share: Share, addrs: list[tuple], sources: tuple[str, ...],
                 sel: Poller, rounds: RoundBuffer, protocol: Stamped,
                 sink: Sink, tls: Layer | None = None) -> None:
        n = len(share.node)
        self.n = n
        self.node = share.node
        self.gids = share.gids
        self.addrs = addrs  # (family, sockaddr) per target
        self.sources = sources  # local IPv4 addresses to spread connections over
        self.sel = sel
        self.rounds = rounds
        self.protocol = protocol
        self.sink = sink
        self.socks: list[socket.socket | None] = [None] * n
        self.pend_in: list[bytes] = [b""] * n
        self.pend_out: list[bytes | None] = [None] * n
        self.alive = np.zeros(n, dtype=bool)
        self.blocked = np.zeros(n, dtype=bool)  # output pending: wait for writability
        self.started = np.zeros(n, dtype=np.int64)  # when each connect began
        self.done = np.zeros(n, dtype=np.int64)  # when each connect completed (0: not)
        self.early: Early | None = None  # send on template replies within the round
        # the peer closed or reset a connection between frames: True when this took it
        # (HTTP: a server's keep-alive close between requests), else it fails
        self.between: Callable[[int], bool] | None = None
        self.tls = tls  # a layer between this transport and its protocol, or None
        self.stamped_rx = False  # reads timed by their arrival (set before connecting)
        if tls is not None:
            self.would_block, self.error_kind = tls.would_block, tls.error_kind

    # ------------------------------------------------------------------ the one error path

    def fail(self, i: int, kind: str) -> None:
        """Count the error, close the connection, forget its state."""
        self.sink.error(kind, 1, time.monotonic_ns())
        self.close(i)

    def hung_up(self, i: int, kind: str) -> None:
        """The peer closed (``closed``) or reset (``reset``) connection ``i``: within a
        frame that is an error (a partial frame cut by a close is ``protocol``), between
        frames too unless :attr:`between` takes it."""
        if self.pend_in[i]:
            self.fail(i, "protocol" if kind == "closed" else kind)
        elif self.between is None or not self.between(i):
            self.fail(i, kind)

    def close(self, i: int) -> None:
        """Close a connection and forget its state (its unanswered messages stay so)."""
        s = self.socks[i]
        if s is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s)
            s.close()
            self.socks[i] = None
        self.alive[i] = False
        self.pend_in[i] = b""
        self.pend_out[i] = None
        self.blocked[i] = False
        self.sink.closed(i)
        if self.tls is not None:
            self.tls.tcp_at[i] = 0

    def close_all(self) -> None:
        for i, s in enumerate(self.socks):
            if s is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(s)
                s.close()
                self.socks[i] = None
        self.alive[:] = False

    # ------------------------------------------------------------------ connect

    def late_kind(self, i: int) -> str:
        """The error kind of a connect that did not finish in time."""
        return "connect_timeout" if self.tls is None else self.tls.late_kind(i)

    def schedule(self, i: int, now: int) -> bool:
        """Connection ``i`` was lost: True when it will be reopened after a backoff (a
        transport that reconnects, harness.protocols.ws.ws's); here never."""
        return False

    def tick(self, now: int, sending: bool, connect_timeout_ns: int) -> None:
        """Every ~100 ms: the transport's own timers (ws: pings, reconnects due); none here."""

    def start_connect(self, i: int) -> bool:
        """Begin connection ``i``'s connect; False when it failed at once (counted)."""
        family, addr = self.addrs[int(self.node[i])]
        try:
            s = socket.socket(family, STREAM_NONBLOCK)  # (no setblocking call: a syscall)
        except OSError as exc:  # out of file descriptors (EMFILE, ENFILE), or memory
            self.fail(i, connect_kind(exc.errno or 0))
            return False
        self.socks[i] = s
        if self.sources and family == socket.AF_INET:
            # a source address per connection, the port still picked at connect time
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            try:
                s.bind((self.sources[source_index(int(self.gids[i]), len(self.addrs),
                                                  len(self.sources))], 0))
            except OSError as exc:
                self.fail(i, connect_kind(exc.errno or 0))
                return False
        self.started[i] = time.monotonic_ns()  # connect latency runs from the call
        rc = s.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            self.fail(i, connect_kind(rc))
            return False
        self.sel.register(s, WRITE, i)
        return True

    def finish_connect(self, i: int) -> int:
        """An event on a connection not yet open: its TCP connect settled, or (with a layer)
        its handshake can go on. 1 when the connection settled (either way)."""
        s = self.socks[i]
        if s is None or self.alive[i]:
            return 0
        if self.tls is not None and self.tls.tcp_at[i]:  # TCP is up: the TLS handshake
            return self.tls.handshake(self, i)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.fail(i, connect_kind(err))
            return 1
        if self.tls is not None:
            return self.tls.begin(self, i, s)
        now = time.monotonic_ns()
        self.done[i] = now
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.stamped_rx:
            s.setsockopt(hot.SOL_SOCKET, hot.SO_TIMESTAMPNS, 1)
        return self.opened(i, s, now)

    def opened(self, i: int, s: socket.socket, now: int) -> int:
        """Connection ``i``'s byte stream is up at ``now`` (TCP connected; with TLS, the
        handshake done): it may send (1: settled). A transport with a handshake of its own
        (harness.protocols.ws.ws's upgrade) begins it here instead."""
        self.alive[i] = True
        self.sel.modify(s, READ, i)
        if self.tls is None:
            self.sink.connected(i, now - int(self.started[i]))
        else:
            self.sink.handshaken(i, self.tls.opened_in(i, now))
        return 1

    # ------------------------------------------------------------------ send

    def send(self, i: int, data: memoryview | bytes) -> None:
        """Send ``data`` to ``i`` after whatever is queued for it (one connection's message,
        or a protocol's control frame or packet)."""
        s = self.socks[i]
        if s is None:
            return
        if self.pend_out[i] is not None:
            self.pend_out[i] = bytes(self.pend_out[i] or b"") + data
            return
        try:
            n = s.send(data)
        except self.would_block:
            n = 0
        except OSError as exc:
            self.fail(i, self.error_kind(exc))
            return
        if n < len(data):
            self.queue(i, memoryview(data)[n:])

    def send_round(self, idx: np.ndarray | list[int], bounds: list[int], data: memoryview,
                   lag: tuple | None = None, failed: list | None = None) -> None:
        """One send per connection, ``data[bounds[k-1]:bounds[k]]`` to ``idx[k]`` (restamp);
        ``failed``: those sends done already (harness.wire.fused), the ones not whole."""
        if self.tls is not None:  # through the layer, whose exceptions mean their own
            conns = idx if isinstance(idx, list) else idx.tolist()
            for i, a, b in zip(conns, [0, *bounds], bounds, strict=False):
                self.send(i, data[a:b])
            return
        # plain sockets: all the sends in one call (C when built), then the rest, in order
        for k, n, err in send_bounds(self.socks, idx, bounds, data, lag) if failed is None \
                else failed:
            i, a, b = int(idx[k]), (bounds[k - 1] if k else 0), bounds[k]
            if err and err not in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.fail(i, self.error_kind(OSError(err, os.strerror(err))))
            else:  # would block, or a partial send: the rest waits for writability
                self.queue(i, data[a + n:b])

    def queue(self, i: int, rest: memoryview) -> None:
        """Keep unsent bytes (copied: the send buffer is reused) and wait for writability."""
        s = self.socks[i]
        assert s is not None  # it just sent
        self.pend_out[i] = bytes(rest)
        self.blocked[i] = True
        self.sink.backlogged(i)
        self.sel.modify(s, READ | WRITE, i)

    def flush(self, i: int) -> None:
        """Writable: send pending bytes; a connect begun mid-run may have completed."""
        if not self.alive[i]:
            self.finish_connect(i)
            return
        s, data = self.socks[i], self.pend_out[i]
        if s is None or data is None:
            return
        try:
            n = s.send(data)
        except self.would_block:
            return
        except OSError as exc:
            self.fail(i, self.error_kind(exc))
            return
        if n < len(data):
            self.pend_out[i] = data[n:]
            return
        self.pend_out[i] = None
        self.blocked[i] = False
        self.sel.modify(s, READ, i)

    # ------------------------------------------------------------------ receive

    def poll(self, wait_s: float, timer: Timer | None) -> list[int]:
        """Wait for events (through the TLS layer, if any): the readable connections."""
        if self.tls is not None:
            return self.tls.poll(self, wait_s, timer)
        return self.plain_poll(wait_s, timer)

    def read_round(self, ready: list[int]) -> None:
        """One read round over the ready connections (through the TLS layer, if any): a
        test per round, as a compiled (mypyc) class's methods cannot be rebound."""
        if self.tls is not None:
            self.tls.read_round(self, ready)
        else:
            self.plain_read_round(ready)

    def plain_poll(self, wait_s: float, timer: Timer | None) -> list[int]:
        """Wait for events; flush the writable; return the readable connections."""
        return self.ready_of(*self.sel.ready_timed(wait_s, timer), timer)

    def ready_of(self, ready: list[int], writable: list[int], timer: Timer | None) -> list[int]:
        """A poll's events: clear the timer, flush the writable; the readable left."""
        if timer is not None and TIMER in ready:
            timer.clear()
            ready.remove(TIMER)
        for i in writable:
            self.flush(i)
        return ready

    def plain_read_round(self, ready: list[int], stopped: tuple | None = None) -> None:
        """recv from each ready socket into the round buffer, keeping whole frames only, then
        hand the round to the sink (``stopped``: where a fused round's reads stopped,
        harness.wire.fused's k, off, status, n, t and reads kept, to go on from). The common
        case stays inline; the rest takes :func:`~harness.wire.rounds.read_carefully` or
        :meth:`_keep`."""
        rb, socks, pend = self.rounds, self.socks, self.pend_in
        proto = self.protocol
        fixed = proto.fixed or 0
        r, off, k = Reads(proto.walks), 0, 0
        if stopped is not None:
            k, off, status, n, t, r.conn, r.end, r.t = stopped
        seg_conn, seg_end, seg_t = r.conn, r.end, r.t
        # a read equal to copies of the protocol's template (the last short reply it cut,
        # e.g. +PONG or one HTTP response) is that many replies: no cut, no parse; in a
        # closed loop the next requests go out at once (harness.wire.rounds.Early)
        tlen, rep, stamped = len(proto.tmpl), proto.rep, self.stamped_rx
        buf, last, nready = rb.buf, len(rb.buf) - CHUNK, len(ready)
        early = self.early
        sent = NO_READS if early is None else Reads(False)  # sent early: conn, count, time
        ea = None if early is None else (early.reqs, early.owed, early.until, self.pend_out,
                                         sent.conn, sent.end, sent.t)
        while k < nready:
            if stopped is not None:  # (a fused round's: its status is handled below)
                stopped = None
            elif tlen:  # the reads of whole frames (harness.wire.hot: in C when built)
                k, off, status, n, t = recv_tmpl(
                    socks, pend, ready, k, buf, off, last, CHUNK, fixed, seg_conn, seg_end,
                    seg_t, rep, tlen, proto.tmpl_code, r.walk, proto.round_codes, ea, stamped)
            else:
                k, off, status, n, t = recv_fixed(socks, pend, ready, k, buf, off, last, CHUNK,
                                                  fixed, seg_conn, seg_end, seg_t, stamped)
            if status == DONE:
                break
            i = ready[k]
            k += 1
            if status == CAREFUL:  # a partial frame waits, no socket, or no room
                off = read_carefully(self, i, off, r)
                if off < 0:
                    break  # the rest stay ready for the next round
                buf, last = rb.buf, len(rb.buf) - CHUNK
                tlen, rep = len(proto.tmpl), proto.rep
            elif status == FAILED:
                self._recv_failed(i, OSError(n, os.strerror(n)))
            elif status == QUEUE and early is not None:  # an early send went out in part
                self.queue(i, memoryview(early.reqs[sent.end[-1]])[n:])
            else:
                off = self._keep(i, off, off + n, t, r)
                tlen, rep = len(proto.tmpl), proto.rep
        self._hand_over(r, sent)

    def _hand_over(self, r: Reads, sent: Reads) -> None:
        """The round's whole frames to the sink, then the requests sent early (booked after
        the replies freed their slots); broken streams fail."""
        if r.conn:
            self.sink.frames(self.rounds.buf, r.conn, r.end, r.t, r.walk)
        if sent.conn:
            self.sink.sent_early(sent.conn, sent.end, sent.t)
        for i in r.broken:
            if self.socks[i] is not None:  # one broken stream, one count (its frames may
                self.fail(i, "protocol")  # have already failed it in the sink)

    def _recv_failed(self, i: int, exc: OSError) -> None:
        if not isinstance(exc, BlockingIOError):  # not ready after all: nothing happened
            self.hung_up(i, error_kind(exc))

    def _keep(self, i: int, start: int, end: int, t: int, r: Reads) -> int:
        """``buf[start:end]`` is connection ``i``'s pending bytes and what it just read at
        ``t``: keep the whole frames for the round, the tail for the next read. Returns
        where the next read goes."""
        pend = self.pend_in
        if end == start + len(pend[i]):  # EOF: after whole frames a close, else junk
            took = self.protocol.at_eof(self.rounds.buf, i, start, end, r.walk) \
                if pend[i] else start
            if took > start:  # a response whose body ran to the close (HTTP)
                pend[i] = b""
                r.conn.append(i)
                r.end.append(took)
                r.t.append(t)
                return took
            self.hung_up(i, "closed")
            return start
        fixed = self.protocol.fixed
        if fixed and (end - start) % fixed == 0:
            cut = end
        else:
            read_end, was_broken = end, len(r.broken)
            cut, end = self.protocol.cut(self.rounds.buf, i, start, end, r.walk, r.broken)
            if len(r.broken) > was_broken:  # the stream broke at cut
                self.sink.unparsed(self.rounds.mv[cut:read_end])
        if cut < end:
            pend[i] = bytes(self.rounds.mv[cut:end])
        elif pend[i]:
            pend[i] = b""
        if cut > start:
            r.conn.append(i)
            r.end.append(cut)
            r.t.append(t)
        return cut


