"""Echo target: every byte a connection sends comes back on it, verbatim.

Built to stay out of the way of a benchmark: no framing, no per-message work. One read
(``recv_into`` a reusable 64 KiB buffer) is written straight back. When the write is
partial, the rest is kept (one copy) and the connection stops being read until it is
flushed, so a client that does not read its echoes is pushed back on through TCP, and a
connection never holds more than one buffer (64 KiB) of pending output.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Callable
from typing import Any, cast

from harness.targets.loop import LISTENER, Stopper, accept_ready, address_of, close_all, read_into

READ_SIZE = 64 * 1024

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class _Conn:
    __slots__ = ("sock", "out")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out: memoryview | None = None  # unsent echo; while set, the socket is not read


class EchoServer:
    CONN: type = _Conn  # a connection's state (the WebSocket target's has more)

    def __init__(self, listeners: list[socket.socket]) -> None:
        self._listeners = listeners
        self._sel = selectors.DefaultSelector()
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [address_of(s) for s in self._listeners]

    def serve(self, stopper: Stopper,
              on_ready: Callable[[list[tuple[str, int]]], None] | None = None) -> None:
        """Serve until ``stopper`` fires, then close every socket (the listeners too)."""
        sel = self._sel
        for lsock in self._listeners:
            sel.register(lsock, EVENT_READ, LISTENER)
        for sock in stopper.socks:
            sel.register(sock, EVENT_READ, stopper)
        if on_ready is not None:
            on_ready(self.addresses)
        conn_cls: Any = self.CONN
        try:
            while not stopper.stopped:
                for key, mask in sel.select():
                    conn: Any = key.data
                    if conn.__class__ is conn_cls:
                        if mask & EVENT_WRITE:
                            self._flush(conn)
                        else:
                            self._echo(conn)
                    elif conn is LISTENER:
                        self._accept(cast(socket.socket, key.fileobj))
                    else:
                        stopper.readable(cast(socket.socket, key.fileobj))
        finally:
            self._close_all()

    def _accept(self, lsock: socket.socket) -> None:
        for sock in accept_ready(lsock):
            self._sel.register(sock, EVENT_READ, self.CONN(sock))

    def _echo(self, conn: _Conn) -> None:
        sock = conn.sock
        n = read_into(sock, self._buf)
        if not n:
            if n == 0:
                self._close(conn)
            return
        try:
            sent = sock.send(self._view[:n])
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < n:
            conn.out = memoryview(bytes(self._view[sent:n]))
            self._sel.modify(sock, EVENT_WRITE, conn)

    def _flush(self, conn: _Conn) -> None:
        out = conn.out
        assert out is not None
        try:
            sent = conn.sock.send(out)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if sent < len(out):
            conn.out = out[sent:]
            return
        conn.out = None
        self._flushed(conn)

    def _flushed(self, conn: _Conn) -> None:
        """Everything owed went out: read the connection again."""
        self._sel.modify(conn.sock, EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        self._sel.unregister(conn.sock)
        conn.sock.close()
        conn.out = None

    def _close_all(self) -> None:
        close_all(self._sel, self._listeners, self.CONN, self._close)
