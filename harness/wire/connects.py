"""Opening a step's connections: the connect loop over a transport, at a rate, bounded by a
deadline, each connect timed when it completes; and the reads of a protocol's own handshake
after TCP (:func:`hello_send`, :func:`hello_read`, :func:`head_kept`: WebSocket's upgrade,
MQTT's CONNECT, Socket.IO's open, an SSE stream's GET)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

import numpy as np

from harness.core.units import SEC
from harness.wire.poller import READ
from harness.wire.transport import TIMER, Transport

LAUNCH_BATCH = 16  # connects begun per pass of the connect loop before settling the done
EXPIRE_EVERY_NS = 100_000_000  # the connect loop looks for expired connects this often


def expire_connects(tp: Transport, now: int, timeout_ns: int, upto: int | None = None) -> int:
    """Fail ``tp``'s connects begun over ``timeout_ns`` ago (among the first ``upto``)."""
    late = (~tp.alive[:upto] & (tp.started[:upto] > 0) & (now - tp.started[:upto] > timeout_ns))
    n = 0
    for i in np.flatnonzero(late).tolist():
        if tp.socks[i] is not None:
            tp.fail(i, tp.late_kind(i))
            n += 1
    return n


def open_all(tp: Transport, want: int, rate: float, timeout_ns: int, deadline_ns: int,
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
            done += not tp.start_connect(launched)
            launched += 1
        wait = 0.0 if launched < allowed else 0.005 if launched < want else 0.05
        for key, _ev in tp.sel.select(wait):
            if key.data != TIMER:
                done += tp.finish_connect(key.data)
        if stop is not None and stop():
            return True
        now = mono()
        if now >= next_expire:
            next_expire = now + EXPIRE_EVERY_NS
            done += expire_connects(tp, now, timeout_ns, launched)
        if now > deadline_ns:
            give_up(tp, want, launched)
            break
    return False


def give_up(tp: Transport, want: int, launched: int) -> None:
    """The connect deadline passed: every connect not done (or not begun) timed out."""
    for i in range(want):
        if i >= launched or (tp.socks[i] is not None and not tp.alive[i]):
            tp.fail(i, tp.late_kind(i))


def hello_read(tp: Transport, i: int, most: int, reset: str = "connect_reset") -> bytes | int:
    """What has come on connection ``i`` during its protocol's own handshake (TCP is up, the
    connection not open yet; with TLS, with what OpenSSL still holds of its record), or how
    it settled here: 0 nothing yet (it would block), 1 it failed, counted once: a reset as
    ``reset`` (a failed connect, by default), another error by its kind, the peer's close
    as ``closed``."""
    s = tp.socks[i]
    assert s is not None  # (an event on it)
    try:
        got = s.recv(most)
        while got and isinstance(s, ssl.SSLSocket) and s.pending():
            more = s.recv(s.pending())
            if not more:
                break
            got += more
    except tp.would_block:
        return 0
    except OSError as exc:
        kind = tp.error_kind(exc)
        tp.fail(i, reset if kind == "reset" else kind)
        return 1
    if not got:
        tp.fail(i, "closed")
        return 1
    return got


def hello_send(tp: Transport, i: int, s: socket.socket, data: bytes) -> int:
    """Write a protocol's opening bytes on connection ``i`` (an upgrade request, a CONNECT: a
    few hundred bytes into an empty socket buffer) and wait for the answer: 0, or 1 when the
    send failed (counted by its kind)."""
    try:
        s.send(data)
    except OSError as exc:
        tp.fail(i, tp.error_kind(exc))
        return 1
    tp.sel.modify(s, READ, i)
    return 0


def head_kept(tp: Transport, heads: list[bytes], i: int, data: bytes, most: int) -> int:
    """A response head not whole yet: kept in ``heads[i]`` until more comes (0), or, past
    ``most`` bytes, one protocol error (1)."""
    if len(data) > most:
        tp.sink.unparsed(memoryview(data))
        tp.fail(i, "protocol")
        return 1
    heads[i] = data
    return 0
