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
import socket
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
from mypy_extensions import mypyc_attr

from harness.core.pools import source_index
from harness.core.result import Share
from harness.core.units import SEC
from harness.wire.poller import READ, WRITE, Poller
from harness.wire.protocol import Stamped
from harness.wire.timer import Timer

CHUNK = 256 * 1024  # most bytes one recv may take in a round
ROUND_BUF = 8 * 1024 * 1024
TIMER = -1  # the timerfd's number in the poller
LAUNCH_BATCH = 16  # connects begun per pass of the connect loop before settling the done
EXPIRE_EVERY_NS = 100_000_000  # the connect loop looks for expired connects this often
STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK  # (Linux, as epoll)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2

CONNECT_KINDS = {  # errno of a failed connect -> its error kind (anything else: connect_other)
    errno.ECONNREFUSED: "connect_refused",
    errno.ETIMEDOUT: "connect_timeout",
    errno.EADDRNOTAVAIL: "connect_no_port",  # no free local port (or source address)
    errno.EADDRINUSE: "connect_no_port",
    errno.EMFILE: "connect_fd_limit",
    errno.ENFILE: "connect_fd_limit",
    errno.ECONNRESET: "connect_reset",  # reset during the handshake
    errno.ENETUNREACH: "connect_unreachable",
    errno.EHOSTUNREACH: "connect_unreachable",
}


def connect_kind(err: int) -> str:
    """The error kind of a connect that failed with ``err`` (an errno)."""
    return CONNECT_KINDS.get(err, "connect_other")


def error_kind(exc: OSError) -> str:
    """The error kind of a failed send or recv on a connected socket."""
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "closed"
    return "reset"


class Sink(Protocol):
    """What the transport reports to (the worker wires it to recording and pacing)."""

    def error(self, kind: str, count: int, now: int) -> None: ...
    def closed(self, i: int) -> None: ...
    def connected(self, i: int, elapsed_ns: int) -> None: ...
    def tcp_connected(self, elapsed_ns: int) -> None: ...  # TLS: the handshake begins
    def handshaken(self, i: int, elapsed_ns: int) -> None: ...  # TLS: ready for data
    def tls_failed(self, kind: str, reason: str) -> None: ...
    def backlogged(self, i: int) -> None: ...
    def unparsed(self, data: memoryview) -> None: ...
    def reconnected(self, now: int) -> None: ...  # a lost connection is back (ws --reconnect)
    def sent_early(self, conns: list[int], counts: list[int], times: list[int]) -> None: ...
    def frames(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
               seg_t: list[int], walk: list[int] | None) -> None: ...


class Layer(Protocol):
    """What sits between a transport and its protocol on every connection (TLS:
    harness.protocols.tls.TlsLayer): its handshake once TCP is up, its reads and its send
    errors. Any transport takes one (``tls=``)."""

    would_block: type[OSError] | tuple[type[OSError], ...]
    tcp_at: np.ndarray  # per connection: ns TCP connected (its handshake began); 0: not yet

    def error_kind(self, exc: OSError) -> str: ...
    def begin(self, tp: Transport, i: int, s: socket.socket) -> int: ...
    def handshake(self, tp: Transport, i: int) -> int: ...
    def late_kind(self, i: int) -> str: ...
    def opened_in(self, i: int, now: int) -> int: ...
    def poll(self, tp: Transport, wait_s: float, timer: Timer | None) -> list[int]: ...
    def read_round(self, tp: Transport, ready: list[int]) -> None: ...


class RoundBuffer:
    """The buffer one round's reads share (kept by the worker across steps)."""

    def __init__(self, size: int = ROUND_BUF) -> None:
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)

    def grow(self, need: int) -> None:
        self.buf = bytearray(max(need, 2 * len(self.buf)))
        self.mv = memoryview(self.buf)


class Early:
    """Closed loop, one fixed request: a connection whose read was whole template replies
    (:meth:`Transport.read_round`) sends as many next requests at once, as a peer tool does,
    instead of after the round; the sink books them (:meth:`Sink.sent_early`). ``reqs[k]`` is
    k requests; ``owed`` each connection's requests awaiting a reply (a read of k replies
    sends k only when k are owed: then each frees a slot); none sent at or after ``until``
    (ns: the end of sending, or the measure start while outside the window)."""

    __slots__ = ("reqs", "owed", "until")

    def __init__(self, request: bytes, owed: np.ndarray, most: int = 64) -> None:
        self.reqs = [request * k for k in range(most + 1)]
        self.owed = owed
        self.until = 0


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed in pure modules
class Transport:
    """One step's connections: sockets, pending bytes both ways, and which are open.

    ``would_block`` and ``error_kind`` are what a send's exceptions mean; a layer (TLS)
    gives its own. They are looked up only when a send raises. With a layer, its ``poll``
    and ``read_round`` replace the transport's, chosen once when it is built (as wrk2 picks
    its socket functions): the plain ones below stay free of any test for TLS."""

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

    def open_all(self, want: int, rate: float, timeout_ns: int, deadline_ns: int,
                 stop: Callable[[], bool] | None) -> bool:
        """Open the first ``want`` connections, ``rate`` per second (0: at once), bounded by
        a deadline. True when ``stop()`` (polled each pass) abandoned the attempt.

        Each pass launches at most LAUNCH_BATCH connects, then settles those that completed
        (a poll without waiting while more are to launch), so a connect's time is taken when
        it completes, not after every other launch. Expired connects are looked for every
        EXPIRE_EVERY_NS, not on every pass."""
        launched = done = 0
        t0 = time.monotonic_ns()
        next_expire = t0 + EXPIRE_EVERY_NS
        mono = time.monotonic_ns
        while done < want:
            now = mono()
            allowed = want if rate <= 0 else min(want, int((now - t0) / SEC * rate) + 1)
            batch = min(allowed, launched + LAUNCH_BATCH)
            while launched < batch:
                done += not self.start_connect(launched)
                launched += 1
            wait = 0.0 if launched < allowed else 0.005 if launched < want else 0.05
            for key, _ev in self.sel.select(wait):
                if key.data != TIMER:
                    done += self.finish_connect(key.data)
            if stop is not None and stop():
                return True
            now = mono()
            if now >= next_expire:
                next_expire = now + EXPIRE_EVERY_NS
                done += self.expire_connects(now, timeout_ns, launched)
            if now > deadline_ns:
                self._give_up(want, launched)
                break
        return False

    def _give_up(self, want: int, launched: int) -> None:
        """The connect deadline passed: every connect not done (or not begun) timed out."""
        for i in range(want):
            if i >= launched or (self.socks[i] is not None and not self.alive[i]):
                self.fail(i, self.late_kind(i))

    def late_kind(self, i: int) -> str:
        """The error kind of a connect that did not finish in time."""
        return "connect_timeout" if self.tls is None else self.tls.late_kind(i)

    def schedule(self, i: int, now: int) -> bool:
        """Connection ``i`` was lost: True when it will be reopened after a backoff (a
        transport that reconnects, harness.protocols.ws.ws's); here never."""
        return False

    def tick(self, now: int, sending: bool, connect_timeout_ns: int) -> None:
        """Every ~100 ms: the transport's own timers (ws: pings, reconnects due); none here."""

    def expire_connects(self, now: int, timeout_ns: int, upto: int | None = None) -> int:
        """Fail connects begun over ``timeout_ns`` ago (among the first ``upto``)."""
        late = (~self.alive[:upto] & (self.started[:upto] > 0) &
                (now - self.started[:upto] > timeout_ns))
        n = 0
        for i in np.flatnonzero(late).tolist():
            if self.socks[i] is not None:
                self.fail(i, self.late_kind(i))
                n += 1
        return n

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

    def send(self, i: int, data: memoryview) -> None:
        s = self.socks[i]
        if s is None:
            return
        try:
            n = s.send(data)
        except self.would_block:
            n = 0
        except OSError as exc:
            self.fail(i, self.error_kind(exc))
            return
        if n < len(data):
            self.queue(i, data[n:])

    def send_round(self, idx: np.ndarray, bounds: list[int], data: memoryview) -> None:
        """One send per connection: ``data[bounds[k-1]:bounds[k]]`` to ``idx[k]``."""
        socks, a = self.socks, 0
        for i, b in zip(idx.tolist(), bounds, strict=True):
            try:  # inline: this is one send per connection per round
                n = socks[i].send(data[a:b])
            except self.would_block:
                n = 0
            except OSError as exc:
                self.fail(i, self.error_kind(exc))
                a = b
                continue
            if n < b - a:
                self.queue(i, data[a + n:b])
            a = b

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
        """One read round over the ready connections (through the TLS layer, if any). A
        test per round, not methods rebound per instance: a compiled (mypyc) class's
        methods cannot be replaced on an instance."""
        if self.tls is not None:
            self.tls.read_round(self, ready)
        else:
            self.plain_read_round(ready)

    def plain_poll(self, wait_s: float, timer: Timer | None) -> list[int]:
        """Wait for events; flush the writable; return the readable connections."""
        ready, writable = self.sel.ready(wait_s)
        if timer is not None and TIMER in ready:
            timer.clear()
            ready.remove(TIMER)
        for i in writable:
            self.flush(i)
        return ready

    def plain_read_round(self, ready: list[int]) -> None:
        """recv from each ready socket into the round buffer, keeping whole frames only, then
        hand the round to the sink.

        Per socket this is the hot path of the whole tool: the common case (no pending
        bytes, whole frames of one size) stays inline; anything else takes
        :meth:`_read_carefully` or :meth:`_keep`."""
        rb, socks, pend = self.rounds, self.socks, self.pend_in
        proto = self.protocol
        fixed = proto.fixed
        r = Reads(proto.walks)
        seg_conn, seg_end, seg_t = r.conn, r.end, r.t
        # a read equal to copies of the protocol's template (the last short reply it cut,
        # e.g. +PONG or one HTTP response) is that many replies: no cut, no parse
        tlen, rep = len(proto.tmpl), proto.rep
        mv, buf, last, off = rb.mv, rb.buf, len(rb.buf) - CHUNK, 0
        mono = time.monotonic_ns
        sent = Reads(False)  # requests sent early: connection, count, time
        for i in ready:
            s = socks[i]
            if s is None or pend[i] or off > last:  # a partial frame waits, or no room
                off = self._read_carefully(i, off, r)
                if off < 0:
                    break  # the rest stay ready for the next round
                mv, buf, last = rb.mv, rb.buf, len(rb.buf) - CHUNK
                tlen, rep = len(proto.tmpl), proto.rep
                continue
            try:
                n = s.recv_into(mv[off:off + CHUNK])
            except OSError as exc:
                self._recv_failed(i, exc)
                continue
            t = mono()
            if n and fixed and n % fixed == 0:  # whole frames only, nothing to keep
                pass
            elif tlen and n and n % tlen == 0 and n <= len(rep) and \
                    buf.startswith(rep[:n], off):  # copies of the template: whole replies
                self._templates(i, off, n // tlen, tlen, t, r, sent)
            else:
                off = self._keep(i, off, off + n, t, r)
                tlen, rep = len(proto.tmpl), proto.rep
                continue
            seg_conn.append(i)
            seg_end.append(off + n)
            seg_t.append(t)
            off += n
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

    def _templates(self, i: int, off: int, k: int, size: int, t: int, r: Reads,
                   sent: Reads) -> None:
        """Connection ``i`` read ``k`` copies of the protocol's template at ``off``: that
        many whole replies (their starts walked, their codes the template's). Sends the
        next ``k`` requests at once when the run sends early (:class:`Early`)."""
        proto, walk = self.protocol, r.walk
        assert walk is not None  # a protocol with a template walks
        if k == 1:
            walk.append(off)
            proto.round_codes.append(proto.tmpl_code)
        else:
            walk.extend(range(off, off + k * size, size))
            proto.round_codes.extend([proto.tmpl_code] * k)
        early = self.early
        if early is not None and t < early.until and early.owed[i] >= k and \
                k < len(early.reqs):
            self._send_early(i, early.reqs[k], k, sent)

    def _send_early(self, i: int, data: bytes, k: int, sent: Reads) -> None:
        """Send connection ``i`` its next ``k`` requests now (kept in ``sent`` with the
        time); a send that fails or would block sends nothing here (the round's own send
        takes over), a partial one queues the rest."""
        if self.pend_out[i] is not None:
            return
        s = self.socks[i]
        assert s is not None  # it just read
        t = time.monotonic_ns()
        try:
            n = s.send(data)
        except OSError:
            return
        if n < len(data):
            self.queue(i, memoryview(data)[n:])
        sent.conn.append(i)
        sent.end.append(k)
        sent.t.append(t)

    def _read_carefully(self, i: int, off: int, r: Reads) -> int:
        """One read after the connection's pending bytes (the buffer grown for one huge
        frame if need be). Returns where the next read goes; -1: no room left this round."""
        s, p, rb = self.socks[i], self.pend_in[i], self.rounds
        if s is None:
            return off
        if off + len(p) + CHUNK > len(rb.buf):
            if off:
                return -1
            rb.grow(len(p) + CHUNK)  # one huge partial frame
        start = off + len(p)
        rb.buf[off:start] = p
        try:
            n = s.recv_into(rb.mv[start:start + CHUNK])
        except OSError as exc:
            self._recv_failed(i, exc)
            return off
        return self._keep(i, off, start + n, time.monotonic_ns(), r)

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


class Reads:
    """One round's reads that brought whole frames: per read its connection, end offset
    in the round buffer and receive time; the frame starts walked (variable sizes); the
    connections whose stream broke."""

    __slots__ = ("conn", "end", "t", "walk", "broken")

    def __init__(self, walks: bool) -> None:
        self.conn: list[int] = []
        self.end: list[int] = []
        self.t: list[int] = []
        self.walk: list[int] | None = [] if walks else None
        self.broken: list[int] = []
