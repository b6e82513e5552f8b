"""What a transport reports, and to whom: the :class:`Sink` its rounds and failures go to
(the worker), the :class:`Layer` that may sit between it and its protocol (TLS), and the
error kinds of a failed connect, send or recv."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Protocol

import numpy as np

from harness.wire.timer import Timer

if TYPE_CHECKING:
    from harness.wire.transport import Transport

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

