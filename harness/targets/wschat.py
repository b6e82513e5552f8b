"""WebSocket chat-room target (``harness serve chat --ws``): the chat target
(:mod:`harness.targets.chat`) with WebSocket clients.

A client's connection starts with its upgrade request (answered 101, or 400 and closed);
then every whole message it sends (a binary or text frame, unmasked with numpy per read:
:func:`harness.protocols.ws.wsserver.client_messages`) goes to every open client of the node,
the sender included, as an unmasked binary frame, and down every link to the other nodes.
Links between nodes stay the chat target's raw frames (the hello, then the run's framing),
and a message arriving over a link goes to the node's clients only. Pings get pongs; a close
(or a fragmented message, which this relay does not take) ends the client's connection.
Sizes are bytes. """

from __future__ import annotations

import numpy as np

from harness.protocols.ws.wsserver import client_messages, server_frames, server_handshake
from harness.targets.chat import CLIENT, PEER_IN, PEER_OUT, UNKNOWN, ChatServer, _Conn
from harness.targets.loop import read_into
from harness.wire.framing import FrameError

MAX_HEAD = 16 * 1024


class WsChatServer(ChatServer):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._open: dict[_Conn, None] = {}  # clients past their handshake, in join order

    def _readable(self, conn: _Conn) -> None:
        if conn.role is PEER_OUT or conn.role is PEER_IN:
            super()._readable(conn)  # raw link frames: _deliver(chunk, to_links=False)
            return
        n = read_into(conn.sock, self._buf)
        if not n:
            if n == 0:
                self._close(conn)
            return
        data = bytes(conn.inbuf) + self._view[:n] if conn.inbuf else bytes(self._view[:n])
        conn.inbuf = None
        if conn.role is UNKNOWN:
            start = self._identify(conn, bytearray(data), len(data))
            if start < 0:  # could still be a link's hello
                conn.inbuf = bytearray(data)
                return
            if conn.role is PEER_IN:
                self._link_frames(conn, data, start)
                return
        if conn not in self._open:
            data = self._handshake(conn, data)
        if data:
            self._messages(conn, data)

    def _handshake(self, conn: _Conn, data: bytes) -> bytes:
        """Answer the upgrade request; returns the bytes after it (frames), b"" if none."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEAD:
                self._close(conn)
            else:
                conn.inbuf = bytearray(data)
            return b""
        reply = server_handshake(data[:end + 4])
        self._send(conn, reply)
        if not reply.startswith(b"HTTP/1.1 101"):
            self._close(conn)
            return b""
        self._open[conn] = None
        return data[end + 4:]

    def _messages(self, conn: _Conn, data: bytes) -> None:
        msgs, ends, ctrl, used, closing = client_messages(data, self._max_frame)
        if used < len(data) and not closing:
            conn.inbuf = bytearray(data[used:])
        if len(ends):
            self._fan_out(msgs, ends, to_links=True)
        if ctrl:
            self._send(conn, ctrl)
        if closing:
            self._close(conn)

    def _link_frames(self, conn: _Conn, data: bytes, start: int) -> None:
        """Frames right behind a link's hello in the same read."""
        try:
            _, cut = self._framing.cut(data, start, len(data), self._max_frame)
        except FrameError:
            self._close(conn)
            return
        if cut < len(data):
            conn.inbuf = bytearray(data[cut:])
        if cut > start:
            self._deliver(data[start:cut], to_links=False)

    def _deliver(self, chunk: bytes, to_links: bool) -> None:
        """A chunk of whole raw frames (from a link): to the clients as WebSocket frames."""
        try:
            starts, _ = self._framing.cut(chunk, 0, len(chunk), self._max_frame)
        except FrameError:
            return
        ends = np.asarray(starts[1:] + [len(chunk)], dtype=np.int64)
        self._fan_out(chunk, ends, to_links)

    def _fan_out(self, msgs: bytes, ends: np.ndarray, to_links: bool) -> None:
        frames = server_frames(msgs, ends)
        for client in tuple(self._open):
            self._send(client, frames)
        if to_links:
            for link in self._links:
                if link.conn is not None and link.conn.role is PEER_OUT:
                    self._send(link.conn, msgs)

    def _close(self, conn: _Conn) -> None:
        self._open.pop(conn, None)
        super()._close(conn)


__all__ = ["CLIENT", "WsChatServer"]
