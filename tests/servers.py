"""Misbehaving TCP servers that the test-suite points the load generator at.

Each server runs in its own forked process (no GIL shared with the load generator under
test), listens on ``127.0.0.1`` on a kernel-chosen port with a backlog of 4096, and runs
one single-threaded ``selectors`` loop. Frames are cut with :mod:`harness.wire.framing`
(``newline``, ``len16``, ``len32``); a partial frame stays buffered per connection until
the rest arrives. Times are seconds of ``time.monotonic()`` (one clock for every process
on the host), sizes are bytes.

Usage::

    with servers.start("delay", framing="len32", delay=0.05) as srv:
        sock = socket.create_connection(srv.address)

``start(behaviour, framing="len32", cpu=None, max_frame=1 MiB, **params)`` validates the
parameters in the calling process (ValueError / TypeError), forks, and returns once the
child is serving (or raises RuntimeError with the child's traceback, bounded wait). The
returned :class:`Handle` has ``.port``, ``.address``, ``.pid``, ``.started`` (the
server's ``time.monotonic()`` when its loop began: phase origin for ``stall`` and
``grow_memory``) and ``.stop()`` (SIGTERM, wait, SIGKILL fallback; idempotent); it is a
context manager. ``closed_port()`` (also ``start("refuse")``) gives a port with nothing
listening.

Behaviours (parameters; exact semantics in each class docstring): ``echo``;
``delay(delay)``; ``stall(period=1.0, pause=0.2)``; ``drop(every)``; ``dup(every)``;
``reset_after(n)``; ``close_after(n, hold=5.0, junk=b"")``; ``garbage_after(n, tail=b"")``;
``mangle(every)``;
``token_bucket(rate, burst=rate/50)``; ``slow_start(threshold, slow_delay, recovery,
delay=0.0)``; ``grow_memory(step, interval=1.0, cap=256 MiB)``; ``chat_faulty(every=0,
victim=0, fault="drop")`` (alias ``chat``); ``chaos(seed, log, reset, fin, garbage,
oversize, big)``; ``refuse`` (no process).

Rules common to every behaviour (unless its docstring says otherwise):

* Frames are numbered per connection from 1 in the order the server reads them.
* Connections are numbered by accept order from 0 (``accept index``), over the server's
  life. Pending accepts are taken before any data is read in a loop round, so clients
  that connected before another client sent data are all in the room.
* A frame longer than ``max_frame`` (whole frame on the wire) closes that connection.
* A client's EOF or a socket error closes the connection at once; replies not yet sent
  are discarded (timers for it become no-ops).
* Replies are byte-identical copies of the frames (same framing) unless stated.
* SIGTERM or SIGINT stops the server; so does the death of the process that started it.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import fcntl
import heapq
import math
import os
import random
import resource
import selectors
import signal
import socket
import stat
import struct
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.wire import framing as framing_mod
from harness.wire.framing import FrameError, Framing

HOST = "127.0.0.1"
BACKLOG = 4096
READ_SIZE = 256 * 1024
ACCEPTS_PER_ROUND = 1024
TIMERS_PER_ROUND = 100_000
DEFAULT_MAX_FRAME = 1 << 20
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
MAX_SELECT_S = 0.1
ACCEPT_BACKOFF_S = 0.05  # pause accepting this long when accept() fails (EMFILE, ...)
RST_DRAIN_S = 2.0  # how long a reset waits for the kernel to hand the replies over

# ---------------------------------------------------------------------------------------
# the event loop (runs in the child)
# ---------------------------------------------------------------------------------------


class Conn:
    """One accepted connection. ``mode``: "open" (frames go to the behaviour) or
    "discard" (input is read and thrown away)."""

    __slots__ = ("sock", "fd", "index", "frames", "rbuf", "wbuf", "mode", "alive",
                 "writing", "after_flush", "hold")

    def __init__(self, sock: socket.socket, index: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.index = index  # accept order, from 0
        self.frames = 0  # frames read so far
        self.rbuf = b""  # partial frame
        self.wbuf = bytearray()  # bytes the kernel has not taken yet
        self.mode = "open"
        self.alive = True
        self.writing = False  # registered for EVENT_WRITE
        self.after_flush: str | None = None  # "rst" | "fin" once wbuf is empty
        self.hold = 0.0  # after a FIN: seconds to keep reading before closing


class Server:
    """The selectors loop. Behaviours call ``send``, ``call_at``, ``finish``,
    ``pause_until`` and read ``conns`` / ``framing``; nothing else."""

    def __init__(self, lsock: socket.socket, framing: Framing, behaviour: Behaviour,
                 max_frame: int, lifeline: int) -> None:
        self.framing = framing
        self.behaviour = behaviour
        self.max_frame = max_frame
        self.conns: dict[int, Conn] = {}  # by fd; insertion order = accept order
        self.accepted = 0
        self.t0 = 0.0
        self._lsock = lsock
        self._timers: list[tuple[float, int, Callable[..., None], tuple]] = []
        self._tseq = 0
        self._dirty: dict[Conn, None] = {}
        self._paused_until = 0.0
        self._stop = False
        self._sel = selectors.DefaultSelector()
        lsock.setblocking(False)
        self._sel.register(lsock, selectors.EVENT_READ, "listen")
        self._lifeline = lifeline
        self._sel.register(lifeline, selectors.EVENT_READ, "lifeline")
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")

    # -- life cycle -----------------------------------------------------------------

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop = True

    def begin(self) -> float:
        self.t0 = time.monotonic()
        self.behaviour.attach(self)
        return self.t0

    def run(self) -> None:
        while not self._stop:
            if self._paused_until > time.monotonic():
                self._sleep_until(self._paused_until)
                continue
            self._run_timers(time.monotonic())
            if self._paused_until > time.monotonic():
                continue  # a stall began: not even the pending writes go out
            self._flush_dirty()
            self._dispatch(self._sel.select(self._timeout(time.monotonic())))
            self._flush_dirty()
        self._close_all()

    def _sleep_until(self, until: float) -> None:
        """A stall: no accept, no read, no write, no timers (bounded by ``until``)."""
        while not self._stop:
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.02))

    def _timeout(self, now: float) -> float:
        if not self._timers:
            return MAX_SELECT_S
        return min(MAX_SELECT_S, max(0.0, self._timers[0][0] - now))

    def _close_all(self) -> None:
        for conn in list(self.conns.values()):
            self.drop(conn)
        self._sel.close()
        self._lsock.close()

    # -- API for behaviours ----------------------------------------------------------

    def call_at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` once ``time.monotonic() >= when`` (at most ~1 ms late)."""
        self._tseq += 1
        heapq.heappush(self._timers, (when, self._tseq, fn, args))

    def send(self, conn: Conn, data: bytes) -> None:
        """Queue ``data`` for ``conn`` (no-op when the connection is gone)."""
        if conn.alive and data:
            conn.wbuf += data
            self._dirty[conn] = None

    def finish(self, conn: Conn, how: str, hold: float = 0.0) -> None:
        """Stop handing frames to the behaviour; once every queued byte is sent, reset
        (``"rst"``) or half-close (``"fin"``: shutdown(SHUT_WR), keep reading and
        discarding until the client's EOF or ``hold`` seconds, then close)."""
        if conn.alive:
            conn.mode = "discard"
            conn.after_flush = how
            conn.hold = hold
            self._dirty[conn] = None

    def pause_until(self, until: float) -> None:
        self._paused_until = max(self._paused_until, until)

    def drop(self, conn: Conn) -> None:
        """Close at once (the one close path)."""
        if not conn.alive:
            return
        conn.alive = False
        self._sel.unregister(conn.sock)
        conn.sock.close()
        del self.conns[conn.fd]
        self._dirty.pop(conn, None)
        conn.wbuf = bytearray()
        self.behaviour.on_close(conn)

    # -- events ---------------------------------------------------------------------

    def _dispatch(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        ready: list[tuple[Conn, int]] = []
        for key, mask in events:
            data = key.data
            if isinstance(data, Conn):
                ready.append((data, mask))
            elif data == "listen":
                self._accept()
            elif data == "wake":
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            else:  # lifeline: EOF means the starting process is gone
                self._stop = True
        for conn, mask in ready:
            if mask & selectors.EVENT_WRITE and conn.alive:
                self._flush(conn)
            if mask & selectors.EVENT_READ and conn.alive:
                self._read(conn)

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_ROUND):
            try:
                sock, _addr = self._lsock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError:  # out of fds or memory: leave the backlog alone for a while
                self._sel.unregister(self._lsock)
                self.call_at(time.monotonic() + ACCEPT_BACKOFF_S, self._resume_accept)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock, self.accepted)
            self.accepted += 1
            self.conns[conn.fd] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)
            self.behaviour.on_open(conn)

    def _resume_accept(self) -> None:
        self._sel.register(self._lsock, selectors.EVENT_READ, "listen")

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.drop(conn)
            return
        if not data:
            self.drop(conn)
            return
        if conn.mode != "open":
            return
        now = time.monotonic()
        buf = conn.rbuf + data if conn.rbuf else data
        try:
            starts, cut = self.framing.cut(buf, 0, len(buf), self.max_frame)
        except FrameError:
            self.drop(conn)
            return
        conn.rbuf = buf[cut:]
        if starts:
            ends = starts[1:] + [cut]
            frames = [buf[s:e] for s, e in zip(starts, ends, strict=True)]
            first = conn.frames + 1
            conn.frames += len(frames)
            self.behaviour.on_frames(conn, frames, first, now)

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        for _ in range(TIMERS_PER_ROUND):
            if not timers or timers[0][0] > now:
                return
            _when, _seq, fn, args = heapq.heappop(timers)
            fn(*args)

    def _flush_dirty(self) -> None:
        while self._dirty:
            conn = next(iter(self._dirty))
            del self._dirty[conn]
            self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        if conn.wbuf:
            try:
                n = conn.sock.send(conn.wbuf)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self.drop(conn)
                return
            del conn.wbuf[:n]
        want = bool(conn.wbuf)
        if want != conn.writing:
            conn.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self._sel.modify(conn.sock, events, conn)
        if not want and conn.after_flush:
            how, conn.after_flush = conn.after_flush, None
            if how == "rst":
                self._reset(conn, time.monotonic() + RST_DRAIN_S)
            else:
                self._half_close(conn)

    def _reset(self, conn: Conn, give_up: float) -> None:
        """RST once the kernel has transmitted every queued byte (the peer's kernel
        then hands them out before reporting the reset), so no reply is eaten."""
        if not conn.alive:
            return
        now = time.monotonic()
        if _unsent(conn.sock) > 0 and now < give_up:
            self.call_at(now + 0.001, self._reset, conn, give_up)
            return
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.drop(conn)

    def _half_close(self, conn: Conn) -> None:
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.drop(conn)
            return
        self.call_at(time.monotonic() + conn.hold, self.drop, conn)


SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet sent


def _unsent(sock: socket.socket) -> int:
    """Bytes the kernel holds for ``sock`` and has not transmitted yet."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, buf)
    except OSError:
        return 0
    return buf[0]


# ---------------------------------------------------------------------------------------
# behaviours (constructed and validated in the parent, run in the child)
# ---------------------------------------------------------------------------------------

BEHAVIOURS: dict[str, type[Behaviour]] = {}


def _register(*names: str) -> Callable[[type[Behaviour]], type[Behaviour]]:
    def deco(cls: type[Behaviour]) -> type[Behaviour]:
        for name in names:
            BEHAVIOURS[name] = cls
        return cls
    return deco


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _join(frames: list[bytes]) -> bytes:
    return frames[0] if len(frames) == 1 else b"".join(frames)


@_register("echo")
class Behaviour:
    """``echo``: every frame is echoed back at once. No parameters. The base class of
    every behaviour (hooks: attach, on_open, on_frames, on_close)."""

    server: Server

    def attach(self, server: Server) -> None:
        self.server = server

    def on_open(self, conn: Conn) -> None:
        pass

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        self.server.send(conn, _join(frames))

    def on_close(self, conn: Conn) -> None:
        pass


@_register("delay")
class Delay(Behaviour):
    """``delay(delay)``: every frame is echoed ``delay`` seconds (float >= 0) after the
    server read it (the time of the ``recv`` that completed the frame). Replies are
    never early and typically at most ~1 ms late; per-connection order is kept. A timer
    heap (one entry per recv batch) holds any number of frames in flight."""

    def __init__(self, *, delay: float) -> None:
        _need(delay >= 0, f"delay: delay must be >= 0 s, got {delay}")
        self.delay = float(delay)

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        self.server.call_at(now + self.delay, self.server.send, conn, _join(frames))


@_register("stall")
class Stall(Behaviour):
    """``stall(period=1.0, pause=0.2)``: echoes at once, except during the windows
    ``[started + k*period, started + k*period + pause)`` for k = 1, 2, ... (``started``
    is ``Handle.started``), when the whole process stops: no accept, read, write or
    timer. At the end of a window it catches up on everything that queued in the kernel.
    A window begins up to ~1 ms late, never early; it ends no earlier than stated.
    Requires 0 < pause < period."""

    def __init__(self, *, period: float = 1.0, pause: float = 0.2) -> None:
        _need(0 < pause < period, f"stall: need 0 < pause < period, got {pause}, {period}")
        self.period = float(period)
        self.pause = float(pause)

    def attach(self, server: Server) -> None:
        super().attach(server)
        server.call_at(server.t0 + self.period, self._window, 1)

    def _window(self, k: int) -> None:
        start = self.server.t0 + k * self.period
        self.server.pause_until(start + self.pause)
        self.server.call_at(start + self.period, self._window, k + 1)


class _EveryK(Behaviour):
    def __init__(self, *, every: int) -> None:
        _need(isinstance(every, int) and every >= 1, f"every must be an int >= 1, got {every}")
        self.every = every


@_register("drop")
class Drop(_EveryK):
    """``drop(every=k)``: echoes every frame except frames k, 2k, 3k, ... of each
    connection (1-based), which get no reply. n frames sent on a connection get
    ``n - n // k`` replies."""

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        k = self.every
        keep = [f for i, f in enumerate(frames, first) if i % k]
        if keep:
            self.server.send(conn, b"".join(keep))


@_register("dup")
class Dup(_EveryK):
    """``dup(every=k)``: echoes every frame; frames k, 2k, 3k, ... of each connection
    (1-based) are echoed twice, back to back. n frames get ``n + n // k`` replies."""

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        k = self.every
        out: list[bytes] = []
        for i, f in enumerate(frames, first):
            out.append(f)
            if i % k == 0:
                out.append(f)
        self.server.send(conn, b"".join(out))


class _AfterN(Behaviour):
    def __init__(self, *, n: int) -> None:
        _need(isinstance(n, int) and n >= 0, f"n must be an int >= 0, got {n}")
        self.n = n

    def on_open(self, conn: Conn) -> None:
        if self.n == 0:
            self._limit_reached(conn)

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        left = self.n - (first - 1)
        if left > 0:
            self.server.send(conn, b"".join(frames[:left]))
        if left <= len(frames):
            self._limit_reached(conn)

    def _limit_reached(self, conn: Conn) -> None:
        raise NotImplementedError


@_register("reset_after")
class ResetAfter(_AfterN):
    """``reset_after(n)``: each connection gets replies to its first n frames (n >= 0),
    then an RST (SO_LINGER on, timeout 0). Frames after the n-th are never answered.
    The reset waits (up to 2 s) until the kernel has transmitted the n replies, so the
    client reads exactly n replies and then ConnectionResetError. n = 0 resets right
    after accept (a client may then see ECONNRESET from connect() itself)."""

    def _limit_reached(self, conn: Conn) -> None:
        self.server.finish(conn, "rst")


@_register("close_after")
class CloseAfter(_AfterN):
    """``close_after(n, hold=5.0, junk=b"")``: each connection gets replies to its first n
    frames (n >= 0), then the bytes ``junk`` (an unterminated partial frame, if any), then
    a clean FIN (shutdown(SHUT_WR)): the client reads exactly n replies (and the junk),
    then EOF. Further input is read and discarded; the socket is closed at the client's
    EOF or ``hold`` seconds after the FIN. n = 0 sends the FIN right after accept."""

    def __init__(self, *, n: int, hold: float = 5.0, junk: bytes = b"") -> None:
        super().__init__(n=n)
        _need(hold >= 0, f"close_after: hold must be >= 0 s, got {hold}")
        self.hold = float(hold)
        self.junk = bytes(junk)

    def _limit_reached(self, conn: Conn) -> None:
        self.server.send(conn, self.junk)
        self.server.finish(conn, "fin", self.hold)


GARBAGE_LINE = b"GARBAGE!" * 8 + b"\n"  # 65 bytes, no hex digit at all
GARBAGE_LEN32 = struct.pack(">I", 0x7FFFFFFF)  # announces a 2 GiB frame, nothing follows
GARBAGE_LEN16 = struct.pack(">H", 0xFFFF) + b"\xff" * 0xFFFF  # a whole 64 KiB junk frame


def garbage_bytes(framing: str) -> bytes:
    """What ``garbage_after`` sends after its n replies, per framing."""
    return {"newline": GARBAGE_LINE, "len16": GARBAGE_LEN16, "len32": GARBAGE_LEN32}[
        framing_mod.get(framing).name]


@_register("garbage_after")
class GarbageAfter(_AfterN):
    """``garbage_after(n)``: each connection gets replies to its first n frames (n >= 0),
    then the bytes of ``garbage_bytes(framing)`` once: len32 a 4-byte prefix announcing
    0x7FFFFFFF bytes (and nothing after it); len16 the largest prefix 0xFFFF followed by
    65535 bytes of 0xFF (an oversized frame for max-frame < 65537, else a frame whose
    stamp fails its check); newline the 64-byte line ``b"GARBAGE!" * 8`` + ``\\n`` (no
    hex digit). ``tail`` (bytes, default none) follows the garbage in the same write. The
    connection then stays open; input is read and discarded."""

    def __init__(self, *, n: int, tail: bytes = b"") -> None:
        super().__init__(n=n)
        self.tail = bytes(tail)

    def _limit_reached(self, conn: Conn) -> None:
        self.server.send(conn, garbage_bytes(self.server.framing.name) + self.tail)
        conn.mode = "discard"


_HEX = b"0123456789abcdef"


def _mangle_table() -> bytes:
    table = bytearray(range(256))
    for i, d in enumerate(_HEX):
        table[d] = _HEX[15 - i]  # a hex digit becomes a different hex digit
    for b in range(256):
        if b not in _HEX and b != 0x0A:
            table[b] = b ^ 0x01 if b ^ 0x01 != 0x0A else b ^ 0x02
    return bytes(table)


_MANGLE_ASCII = _mangle_table()
_FLIP4 = bytes.maketrans(bytes(range(256)), bytes(b ^ 0xFF for b in range(256)))


@_register("mangle")
class Mangle(_EveryK):
    """``mangle(every=k)``: echoes every frame; frames k, 2k, ... of each connection
    (1-based) come back with the stamp's check word altered, length and framing intact:
    length-prefixed, the 4 body bytes right after the prefix are XORed with 0xFF; newline,
    the first 8 bytes of the line have each hex digit d replaced by digit 15 - d (other
    bytes get bit 0 flipped, never becoming a newline). A harness stamp's check then
    fails while the rest of the stamp still decodes. Shorter bodies are altered as far as
    they go."""

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        k = self.every
        out = [self._mangle(f) if i % k == 0 else f for i, f in enumerate(frames, first)]
        self.server.send(conn, b"".join(out))

    def _mangle(self, frame: bytes) -> bytes:
        fr = self.server.framing
        if fr.name == "newline":
            head = frame[:min(8, len(frame) - 1)]
            return head.translate(_MANGLE_ASCII) + frame[len(head):]
        h = fr.header
        return frame[:h] + frame[h:h + 4].translate(_FLIP4) + frame[h + 4:]


@_register("token_bucket")
class TokenBucket(Behaviour):
    """``token_bucket(rate, burst=None)``: one bucket shared by all connections; it
    refills at ``rate`` tokens/s up to ``burst`` (default max(1, rate / 50)) and starts
    full. Each reply takes one token. Frames wait in one FIFO across connections (in the
    order read) and are echoed as tokens arrive, so throughput is at most ``rate`` plus
    the initial burst, and beyond ``rate`` the queue (and latency) grows without bound.
    Frames of closed connections are skipped without taking a token."""

    def __init__(self, *, rate: float, burst: float | None = None) -> None:
        _need(rate > 0, f"token_bucket: rate must be > 0 frames/s, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 50)
        _need(self.burst >= 1, f"token_bucket: burst must be >= 1, got {burst}")
        self.tokens = self.burst
        self.stamp = 0.0
        self.queue: deque[tuple[Conn, bytes]] = deque()
        self.wakeup_set = False

    def attach(self, server: Server) -> None:
        super().attach(server)
        self.stamp = server.t0

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        self.queue.extend((conn, f) for f in frames)
        self._serve()

    def _on_timer(self) -> None:
        self.wakeup_set = False
        self._serve()

    def _serve(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        queue, send = self.queue, self.server.send
        while queue and self.tokens >= 1:
            conn, frame = queue.popleft()
            if conn.alive:
                send(conn, frame)
                self.tokens -= 1
        if queue and not self.wakeup_set:
            self.wakeup_set = True
            self.server.call_at(now + (1 - self.tokens) / self.rate, self._on_timer)


@_register("slow_start")
class SlowStart(Behaviour):
    """``slow_start(threshold, slow_delay, recovery, delay=0.0)``: echoes like ``delay``
    with ``delay`` seconds while healthy. When the number of open connections exceeds
    ``threshold`` (checked at each accept) it turns slow: frames read from then on are
    echoed after ``slow_delay`` seconds. When the count falls back to <= threshold
    (checked as the server closes a connection, i.e. when it reads the client's EOF) a
    recovery clock starts; the server stays slow until ``recovery`` seconds later, then
    is healthy again. Exceeding the threshold again before that stops the clock. The
    delay is chosen when a frame is read."""

    def __init__(self, *, threshold: int, slow_delay: float, recovery: float,
                 delay: float = 0.0) -> None:
        _need(isinstance(threshold, int) and threshold >= 0,
              f"slow_start: threshold must be an int >= 0, got {threshold}")
        _need(delay >= 0 and slow_delay >= 0 and recovery >= 0,
              "slow_start: delay, slow_delay and recovery must be >= 0 s")
        self.threshold = threshold
        self.delay = float(delay)
        self.slow_delay = float(slow_delay)
        self.recovery = float(recovery)
        self.slow_until = -math.inf  # inf while over the threshold

    def on_open(self, conn: Conn) -> None:
        if len(self.server.conns) > self.threshold:
            self.slow_until = math.inf

    def on_close(self, conn: Conn) -> None:
        if self.slow_until == math.inf and len(self.server.conns) <= self.threshold:
            self.slow_until = time.monotonic() + self.recovery

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        d = self.slow_delay if now < self.slow_until else self.delay
        self.server.call_at(now + d, self.server.send, conn, _join(frames))


@_register("grow_memory")
class GrowMemory(Behaviour):
    """``grow_memory(step, interval=1.0, cap=256 MiB)``: echoes at once, and at
    ``started + k*interval`` (k = 1, 2, ...) allocates ``step`` more bytes, written to
    so every page is resident, and keeps them, until ``cap`` bytes are held in all (the
    last allocation is cut to fit). RSS grows by about ``step`` per interval."""

    def __init__(self, *, step: int, interval: float = 1.0, cap: int = 256 << 20) -> None:
        _need(step > 0 and cap > 0, "grow_memory: step and cap must be > 0 bytes")
        _need(interval > 0, f"grow_memory: interval must be > 0 s, got {interval}")
        self.step = int(step)
        self.interval = float(interval)
        self.cap = int(cap)
        self.held: list[bytes] = []
        self.total = 0

    def attach(self, server: Server) -> None:
        super().attach(server)
        server.call_at(server.t0 + self.interval, self._grow, 1)

    def _grow(self, k: int) -> None:
        n = min(self.step, self.cap - self.total)
        if n <= 0:
            return
        self.held.append(b"\x5a" * n)  # memset: the pages are touched
        self.total += n
        self.server.call_at(self.server.t0 + (k + 1) * self.interval, self._grow, k + 1)


@_register("chat_faulty", "chat")
class ChatFaulty(Behaviour):
    """``chat_faulty(every=0, victim=0, fault="drop")`` (also ``chat``): a chat room.
    Every complete frame read from any client is sent to every connected client, sender
    included, in the order read; recipients are served in accept order. The connection
    whose accept index is ``victim`` is the faulty receiver: counting the messages meant
    for it from 1 (all of them, its own included, from its accept on), messages k, 2k, ...
    (k = ``every``) are not delivered to it (``fault="drop"``) or delivered twice back
    to back (``fault="dup"``). Every other delivery happens exactly once. ``every=0``
    means no faults (a plain chat room)."""

    def __init__(self, *, every: int = 0, victim: int = 0, fault: str = "drop") -> None:
        _need(isinstance(every, int) and every >= 0, f"chat: every must be int >= 0: {every}")
        _need(isinstance(victim, int) and victim >= 0, f"chat: victim must be >= 0: {victim}")
        _need(fault in ("drop", "dup"), f"chat: fault must be 'drop' or 'dup', got {fault!r}")
        self.every = every
        self.victim = victim
        self.fault = fault
        self.victim_count = 0  # messages meant for the victim so far

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        data = _join(frames)
        for peer in list(self.server.conns.values()):
            if peer.index == self.victim and self.every:
                self.server.send(peer, self._for_victim(frames))
            else:
                self.server.send(peer, data)

    def _for_victim(self, frames: list[bytes]) -> bytes:
        out: list[bytes] = []
        for f in frames:
            self.victim_count += 1
            if self.victim_count % self.every:
                out.append(f)
            elif self.fault == "dup":
                out += (f, f)
        return b"".join(out)


CHAOS_KINDS = ("reset", "fin", "garbage", "oversize")


@_register("chaos")
class Chaos(Behaviour):
    """``chaos(seed, log, reset=0.002, fin=0.002, garbage=0.02, oversize=0.002,
    big=65536)``: echoes every frame, except that each frame may draw one fault instead
    of its reply, with these probabilities (per frame, from a ``random.Random`` seeded
    with ``(seed, accept index)``, so a connection's faults depend only on its frame
    numbers):

    * ``reset``: the frames before it are answered, then an RST (as ``reset_after``);
    * ``fin``: the frames before it are answered, then a FIN (as ``close_after``, hold 5 s);
    * ``garbage``: instead of its reply, a frame of the same size whose body is junk (the
      stamp check fails); the connection goes on;
    * ``oversize``: instead of its reply, a frame longer than any sane max-frame: len32
      the prefix 0x7FFFFFFF, len16 0xFFFF, each followed by 64 junk bytes; newline ``big``
      bytes without a newline. Input is then read and discarded.

    After reset, fin or oversize the connection's later frames are read and discarded.
    Each fault is appended to the file ``log`` when it is decided, as one line
    ``<accept index> <frame number> <kind>``; kinds are those of ``CHAOS_KINDS``."""

    def __init__(self, *, seed: int, log: str, reset: float = 0.002, fin: float = 0.002,
                 garbage: float = 0.02, oversize: float = 0.002, big: int = 65536) -> None:
        odds = (reset, fin, garbage, oversize)
        _need(all(0 <= p <= 1 for p in odds) and sum(odds) <= 1,
              f"chaos: probabilities must be in [0, 1] and sum to <= 1, got {odds}")
        _need(big > 0, f"chaos: big must be > 0 bytes, got {big}")
        self.seed = int(seed)
        self.log = str(log)
        self.edges = [sum(odds[:k + 1]) for k in range(len(odds))]
        self.big = int(big)
        self.rngs: dict[Conn, random.Random] = {}
        self.fd = -1

    def attach(self, server: Server) -> None:
        super().attach(server)
        self.fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def on_open(self, conn: Conn) -> None:
        self.rngs[conn] = random.Random(self.seed * 1_000_003 + conn.index)

    def on_close(self, conn: Conn) -> None:
        self.rngs.pop(conn, None)

    def on_frames(self, conn: Conn, frames: list[bytes], first: int, now: float) -> None:
        rng = self.rngs[conn]
        out: list[bytes] = []
        for number, frame in enumerate(frames, first):
            kind = self._draw(rng)
            if kind is None:
                out.append(frame)
                continue
            os.write(self.fd, f"{conn.index} {number} {kind}\n".encode())
            if kind == "garbage":
                out.append(self._garbage(frame))
                continue
            if kind == "oversize":
                out.append(self._oversize())
            self.server.send(conn, b"".join(out))
            if kind == "oversize":
                conn.mode = "discard"
            else:
                self.server.finish(conn, "rst" if kind == "reset" else "fin", 5.0)
            return
        self.server.send(conn, b"".join(out))

    def _draw(self, rng: random.Random) -> str | None:
        x = rng.random()
        for kind, edge in zip(CHAOS_KINDS, self.edges, strict=True):
            if x < edge:
                return kind
        return None

    def _garbage(self, frame: bytes) -> bytes:
        fr = self.server.framing
        if fr.name == "newline":
            return b"G" * (len(frame) - 1) + b"\n"
        return frame[:fr.header] + b"\xa5" * (len(frame) - fr.header)

    def _oversize(self) -> bytes:
        fr = self.server.framing
        if fr.name == "newline":
            return b"G" * self.big
        top = 0x7FFFFFFF if fr.header == 4 else 0xFFFF
        return top.to_bytes(fr.header, "big") + b"\xa5" * 64


def chaos_log(path: str) -> dict[str, int]:
    """Faults by kind in a ``chaos`` server's log (every kind present, 0 when none)."""
    counts = dict.fromkeys(CHAOS_KINDS, 0)
    with open(path) as f:
        for line in f:
            counts[line.split()[2]] += 1
    return counts


def make_behaviour(name: str, params: dict[str, Any]) -> Behaviour:
    """Build and validate a behaviour: ValueError (unknown name, bad value) or TypeError
    (unknown or missing parameter)."""
    try:
        cls = BEHAVIOURS[name]
    except KeyError:
        known = ", ".join(sorted([*BEHAVIOURS, "refuse"]))
        raise ValueError(f"unknown server behaviour {name!r} (choose from {known})") from None
    try:
        return cls(**params)
    except TypeError as e:
        raise TypeError(f"{name}: {e}") from None


# ---------------------------------------------------------------------------------------
# process management (runs in the caller)
# ---------------------------------------------------------------------------------------

_live: dict[Handle, None] = {}


@dataclass(eq=False)
class Handle:
    """A started server (or, with ``pid`` None, a reserved closed port)."""

    behaviour: str
    framing: str
    port: int
    pid: int | None
    started: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    exit_status: int | None = None  # wait status once reaped
    _lifeline: int = field(default=-1, repr=False)
    _holder: socket.socket | None = field(default=None, repr=False)
    _owner: int = field(default_factory=os.getpid, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def alive(self) -> bool:
        if self._stopped or self.pid is None:
            return False
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid:
            self.exit_status = status
            self._stopped = True
            _live.pop(self, None)
        return pid == 0

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Idempotent; a no-op in a
        process other than the one that started the server."""
        if self._stopped:
            return
        self._stopped = True
        _live.pop(self, None)
        if self._holder is not None:
            self._holder.close()
        if self._lifeline >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lifeline)
            self._lifeline = -1
        if self.pid is not None and os.getpid() == self._owner:
            self.exit_status = _terminate(self.pid, timeout)

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(pid: int, timeout: float) -> int | None:
    """SIGTERM then reap; SIGKILL after ``timeout``. Returns the wait status."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return status
        if time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


@atexit.register
def _stop_leftovers() -> None:
    for handle in list(_live):
        handle.stop(timeout=1.0)


def closed_port() -> Handle:
    """``refuse``: a port on 127.0.0.1 with nothing listening. A socket stays bound to
    it (without listen) until ``.stop()``, so no one else takes the port meanwhile and
    every connect gets ECONNREFUSED."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((HOST, 0))
    handle = Handle("refuse", "", holder.getsockname()[1], None, time.monotonic(),
                    _holder=holder)
    _live[handle] = None
    return handle


def start(behaviour: str, framing: str = "len32", cpu: int | None = None,
          **params: Any) -> Handle:
    """Fork a server process running ``behaviour`` and return once it serves.

    ``framing``: newline, len16 or len32. ``cpu``: pin the server to that core.
    ``max_frame``: largest accepted frame in bytes, prefix included (default 1 MiB).
    Other keyword arguments go to the behaviour (see its docstring).
    """
    if behaviour == "refuse":
        if params or cpu is not None:
            raise TypeError("refuse takes no parameters")
        return closed_port()
    fr = framing_mod.get(framing)
    max_frame = int(params.pop("max_frame", DEFAULT_MAX_FRAME))
    _need(max_frame > fr.overhead(), f"max_frame must exceed {fr.overhead()} bytes")
    beh = make_behaviour(behaviour, dict(params))
    return _fork_server(lambda lsock, ready_w, life_r: _child(
        lsock, ready_w, life_r, fr, beh, max_frame, cpu), behaviour, fr.name, params)


def _fork_server(child: Callable[[socket.socket, int, int], Any], behaviour: str,
                 framing: str, params: dict[str, Any] | None = None) -> Handle:
    """Fork ``child(listening socket, ready pipe, lifeline pipe)`` (it never returns) on a
    fresh port of 127.0.0.1, and return its Handle once it serves."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsock.bind((HOST, 0))
        lsock.listen(BACKLOG)
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            child(lsock, ready_w, life_r)
        port = lsock.getsockname()[1]
    finally:
        lsock.close()
    os.close(ready_w)
    os.close(life_r)
    handle = Handle(behaviour, framing, port, pid, params=params or {}, _lifeline=life_w)
    _live[handle] = None
    try:
        handle.started = _await_ready(ready_r, handle)
    except BaseException:
        handle.stop(timeout=1.0)
        raise
    finally:
        os.close(ready_r)
    return handle


def _await_ready(fd: int, handle: Handle) -> float:
    """Read the child's "ok <t0>" line (bounded wait); raise RuntimeError otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_S
    got = b""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        while not got.endswith(b"\n") and (left := deadline - time.monotonic()) > 0:
            if sel.select(left):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                got += chunk
    finally:
        sel.close()
    text = got.decode(errors="replace")
    if text.startswith("ok "):
        return float(text.split()[1])
    what = f"server {handle.behaviour!r} (pid {handle.pid}) did not start"
    if not got:
        raise RuntimeError(f"{what}: no word from it within {START_TIMEOUT_S} s or it died")
    raise RuntimeError(f"{what}:\n{text}")


def _child(lsock: socket.socket, ready_w: int, life_r: int, fr: Framing,
           beh: Behaviour, max_frame: int, cpu: int | None) -> None:
    """The forked process: never returns."""
    def start() -> tuple[float, Callable[[], None]]:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        server = Server(lsock, fr, beh, max_frame, life_r)
        server.install_signals()
        return server.begin(), server.run

    _run_child({lsock.fileno(), ready_w, life_r}, ready_w, cpu, start)


def _run_child(keep: set[int], ready_w: int, cpu: int | None,
               start: Callable[[], tuple[float, Callable[[], None]]]) -> None:
    """A forked server's life: keep only its own inherited fds, pin it, ``start()`` it (its
    start time and its loop), say ``ok`` (or the traceback) on the ready pipe, serve until
    told to stop. Never returns."""
    code = 1
    try:
        _scrub_inherited(keep=keep)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        t0, serve = start()
        os.write(ready_w, f"ok {t0!r}\n".encode())
        os.close(ready_w)
        ready_w = -1
        serve()
        code = 0
    except BaseException:
        msg = traceback.format_exc().encode(errors="replace")
        with contextlib.suppress(OSError):
            os.write(ready_w if ready_w >= 0 else 2, b"error " + msg)
    finally:
        os._exit(code)


def _scrub_inherited(keep: set[int]) -> None:
    """Point every inherited socket and pipe (other servers' listeners, the test's
    client sockets, lifelines) at /dev/null in this process, so that closing them in the
    parent really closes them. The fd numbers stay taken, so a stale Python object that
    closes one later cannot close a socket of ours."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd < 3 or fd in keep or fd == null:
                continue
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                continue
            if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
                os.dup2(null, fd)
    finally:
        os.close(null)


# ---------------------------------------------------------------------------- TLS echo


def start_tls_echo(cert: str, key: str, sni_log: str | None = None,
                   cpu: int | None = None) -> Handle:
    """``tls_echo``: a TLS echo server on 127.0.0.1 (certificate chain ``cert``, key ``key``,
    PEM files). Every byte decrypted goes back as it came, whatever the framing. The
    handshake runs non-blocking in the server's selector loop; a connection whose handshake
    fails is closed. ``sni_log``: a file the server appends each client's SNI name to, one a
    line ("-" when the client sent none). Returns once serving, like :func:`start`."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if sni_log:
        def note(_sock: Any, name: str | None, _ctx: Any) -> None:
            with open(sni_log, "a") as f:
                f.write(f"{name or '-'}\n")
        ctx.sni_callback = note
    return _fork_server(lambda lsock, ready_w, life_r: _tls_child(
        lsock, ready_w, life_r, ctx, cpu), "tls_echo", "")


def _tls_child(lsock: socket.socket, ready_w: int, life_r: int, ctx: Any,
               cpu: int | None) -> None:
    """The forked TLS echo server: never returns."""
    def start() -> tuple[float, Callable[[], None]]:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        lsock.setblocking(False)
        return time.monotonic(), TlsEcho(lsock, life_r, ctx).run

    _run_child({lsock.fileno(), ready_w, life_r}, ready_w, cpu, start)


class TlsEcho:
    """The TLS echo server's loop: per connection, whether its handshake is done and the
    bytes it still has to send back."""

    def __init__(self, lsock: socket.socket, life_r: int, ctx: Any) -> None:
        self.sel = selectors.DefaultSelector()
        self.sel.register(lsock, selectors.EVENT_READ, "accept")
        self.sel.register(life_r, selectors.EVENT_READ, "life")
        self.lsock = lsock
        self.ctx = ctx
        self.out: dict[Any, bytearray] = {}
        self.shaking: set[Any] = set()

    def run(self) -> None:
        while True:
            for key, _ev in self.sel.select(MAX_SELECT_S):
                if key.data == "life":
                    return  # the process that started us is gone
                if key.data == "accept":
                    self.accept()
                else:
                    self.serve(key.fileobj)

    def accept(self) -> None:
        for _ in range(ACCEPTS_PER_ROUND):
            try:
                conn, _addr = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            s = self.ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            self.out[s] = bytearray()
            self.shaking.add(s)
            self.sel.register(s, selectors.EVENT_READ, "conn")
            self.serve(s)

    def serve(self, s: Any) -> None:
        import ssl
        try:
            if s in self.shaking:
                s.do_handshake()
                self.shaking.discard(s)
            self.read(s)
            self.flush(s)
        except ssl.SSLWantReadError:
            self.sel.modify(s, selectors.EVENT_READ, "conn")
        except ssl.SSLWantWriteError:
            self.sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, "conn")
        except (OSError, ValueError, EOFError):
            self.drop(s)

    def read(self, s: Any) -> None:
        """Every record there is (what OpenSSL holds included), queued to go back."""
        import ssl
        out = self.out[s]
        while True:
            try:
                data = s.recv(READ_SIZE)
            except ssl.SSLWantReadError:
                return
            if not data:
                raise EOFError
            out += data

    def flush(self, s: Any) -> None:
        out = self.out[s]
        while out:
            n = s.send(out)  # SSLWantWriteError: retried with the same bytes
            del out[:n]
        self.sel.modify(s, selectors.EVENT_READ, "conn")

    def drop(self, s: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(s)
        self.out.pop(s, None)
        self.shaking.discard(s)
        s.close()
