"""Pieces every built-in target shares: listening sockets and the stop signal.

A target is one ``selectors`` loop over non-blocking sockets. It ends when its
:class:`Stopper` fires: on SIGINT/SIGTERM (when installed from the main thread), on
:meth:`Stopper.stop`, or when a watched *lifeline* socket reaches EOF (the launching
parent died). Sizes are in bytes, times in seconds.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from harness.core.interrupts import handled

LISTEN_BACKLOG = 4096

# Selector key data of the sockets that are not connections.
LISTENER = "listener"


def listen(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A non-blocking listening TCP socket on ``host:port`` (IPv4 or IPv6; port 0 = any)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def address_of(sock: socket.socket) -> tuple[str, int]:
    """``(host, port)`` a listening socket is bound to."""
    host, port = sock.getsockname()[:2]
    return host, port


def connect_host(host: str) -> str:
    """The address to connect to for a server bound to ``host`` (wildcards -> loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def read_into(sock: socket.socket, buf: bytearray) -> int | None:
    """One ``recv_into``: bytes read, 0 when the peer closed or the socket failed (close
    it), None when there was nothing to read after all."""
    try:
        return sock.recv_into(buf)
    except BlockingIOError:
        return None
    except OSError:
        return 0


def close_all(sel: selectors.BaseSelector, listeners: list[socket.socket], conn_type: type,
              close: Callable[[Any], None]) -> None:
    """Shut a server loop down: every connection through ``close``, then the listeners and
    the selector."""
    for key in list(sel.get_map().values()):
        if key.data.__class__ is conn_type:
            close(key.data)
    for lsock in listeners:
        sel.unregister(lsock)
        lsock.close()
    sel.close()


def accept_ready(listener: socket.socket, limit: int = 256) -> Iterator[socket.socket]:
    """Accept what is pending (up to ``limit``), as non-blocking TCP_NODELAY sockets."""
    for _ in range(limit):
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        except OSError:  # EMFILE, ECONNABORTED, ...: try again next round
            return
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield sock


class Stopper:
    """Tells a serve loop to end. Register :attr:`socks` in the selector with ``data=self``
    and call :meth:`readable` when one of them is ready; check :attr:`stopped` each round.
    """

    def __init__(self) -> None:
        self.stopped = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lifeline: socket.socket | None = None

    @property
    def socks(self) -> list[socket.socket]:
        extra = [self._lifeline] if self._lifeline is not None else []
        return [self._wake_r, *extra]

    def watch(self, lifeline: socket.socket) -> None:
        """Stop when ``lifeline`` reaches EOF (its other end closed everywhere)."""
        lifeline.setblocking(False)
        self._lifeline = lifeline

    def stop(self) -> None:
        """Ask the loop to end (from any thread)."""
        self.stopped = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def readable(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if sock is self._lifeline and not data:
            self.stopped = True

    @contextlib.contextmanager
    def signals(self) -> Iterator[Stopper]:
        """While active, SIGINT and SIGTERM stop the loop (main thread only; else a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        try:
            with handled(self._on_signal):
                yield self
        finally:
            signal.set_wakeup_fd(old_fd)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopped = True

    def close(self) -> None:
        for sock in (self._wake_r, self._wake_w, self._lifeline):
            if sock is not None:
                sock.close()
