"""WebSocket echo target (``harness serve echo --ws``): every message a client sends comes
back to it, unmasked, as the same frame.

Each connection first sends an upgrade request; the reply is 101 with its accept key (400
for anything else, then close). After that each read's whole frames are answered at once:
frames of one size under 126 bytes (the common benchmark case) are unmasked as one numpy
array per read (:func:`harness.protocols.ws.wsserver.echo_frames`); pings get pongs, a close
gets its close back and the connection ends. As in the TCP echo target, a partial write
stops reading that connection until it is flushed, so a connection never holds more than
one read's replies. Sizes are bytes.
"""

from __future__ import annotations

import selectors
import socket
from typing import Any

from harness.protocols.ws.wsserver import echo_frames, server_handshake
from harness.targets.echo import EchoServer
from harness.targets.loop import read_into

READ_SIZE = 256 * 1024
MAX_HEAD = 16 * 1024

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class _WsConn:
    __slots__ = ("sock", "out", "inbuf", "open", "closing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out: memoryview | None = None  # unsent replies; while set, the socket is not read
        self.inbuf = b""  # a partial frame (or request head) waiting for the rest
        self.open = False  # handshake done
        self.closing = False  # close once the replies are out


class WsEchoServer(EchoServer):
    """The TCP echo target's loop (:class:`harness.targets.echo.EchoServer`), with a
    WebSocket connection's state and reads."""

    CONN = _WsConn

    def __init__(self, listeners: list[socket.socket], max_frame: int = 1 << 20) -> None:
        super().__init__(listeners)
        self._max_frame = max_frame
        self._buf = bytearray(READ_SIZE)  # a read holds many frames: a bigger buffer
        self._view = memoryview(self._buf)

    def _echo(self, conn: Any) -> None:  # a _WsConn
        n = read_into(conn.sock, self._buf)
        if not n:
            if n == 0:
                self._close(conn)
            return
        data = conn.inbuf + self._view[:n] if conn.inbuf else self._view[:n]
        if not conn.open:
            self._handshake(conn, bytes(data))
            return
        reply, used, closing = echo_frames(data, self._max_frame)
        conn.inbuf = bytes(data[used:]) if used < len(data) else b""
        conn.closing = closing
        self._send(conn, reply)

    def _handshake(self, conn: _WsConn, data: bytes) -> None:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEAD:
                self._close(conn)
            else:
                conn.inbuf = data
            return
        reply = server_handshake(data[:end + 4])
        conn.open = reply.startswith(b"HTTP/1.1 101")
        conn.closing = not conn.open
        conn.inbuf = b""
        self._send(conn, reply)
        if conn.open and len(data) > end + 4:  # frames sent right behind the request
            reply, used, conn.closing = echo_frames(data[end + 4:], self._max_frame)
            conn.inbuf = data[end + 4 + used:]
            self._send(conn, reply)

    def _send(self, conn: _WsConn, data: bytes) -> None:
        if conn.sock.fileno() < 0:
            return
        if conn.out is not None:
            conn.out = memoryview(bytes(conn.out) + data)
            return
        try:
            sent = conn.sock.send(data) if data else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < len(data):
            conn.out = memoryview(data)[sent:]
            self._sel.modify(conn.sock, EVENT_WRITE, conn)
        elif conn.closing:
            self._close(conn)

    def _flushed(self, conn: Any) -> None:  # a _WsConn
        """Everything owed went out: close if a close was answered, else read again."""
        if conn.closing:
            self._close(conn)
        else:
            self._sel.modify(conn.sock, EVENT_READ, conn)

    def _close(self, conn: Any) -> None:  # a _WsConn
        if conn.sock.fileno() < 0:
            return
        self._sel.unregister(conn.sock)
        conn.sock.close()
        conn.out = None
