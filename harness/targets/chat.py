"""Chat-room target: every complete frame a client sends goes to every connected client,
the sender included, verbatim.

Frames are cut with :mod:`harness.wire.framing`; a partial frame waits in its connection's
buffer, a frame longer than ``max_frame`` closes that connection. All the complete frames
of one read travel as one chunk: one write per client per read, not per frame.

Output is queued per connection (memoryviews of shared chunks, written with ``sendmsg``)
and bounded by ``out_limit`` bytes (16 MiB): a client that falls further behind is closed.

Cluster mode: a node opens one outbound *link* to every other node and sends
:func:`hello` first on it. A chunk from one of the node's own clients goes to its clients
and once down every link; a chunk arriving over a link (an inbound connection that
started with the hello) goes to the node's clients only, so nothing loops or doubles.
Bytes arriving on an outbound link are read and dropped. A link that fails is retried
every ``RETRY_S`` seconds; the node keeps serving its clients meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import cast

from harness.targets.loop import LISTENER, Stopper, accept_ready, address_of, close_all, read_into
from harness.wire.framing import FrameError, Framing

READ_SIZE = 256 * 1024
OUT_LIMIT = 16 * 1024 * 1024
RETRY_S = 0.5
SENDMSG_MAX = 64  # buffers per sendmsg call

# A link's first frame body: NUL-led, so it cannot be a harness stamp (binary stamps fill
# whole frames of their own size, ASCII stamps are hex digits), then the sender's index.
HELLO_MAGIC = b"\x00harness-peer-link\x00"

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

# Connection roles.
UNKNOWN = "unknown"  # accepted, first frame not seen yet: treated as a client
CLIENT = "client"
PEER_IN = "peer-in"  # inbound link: its frames go to local clients only
LINKING = "linking"  # outbound link, connect in progress
PEER_OUT = "peer-out"  # outbound link, up: local clients' frames go down it
CLOSED = "closed"


def hello(index: int) -> bytes:
    """The body of the first frame on a link from node ``index``."""
    return HELLO_MAGIC + b"%04d" % index


class _Conn:
    __slots__ = ("sock", "role", "inbuf", "out", "out_bytes", "link")

    def __init__(self, sock: socket.socket, role: str, link: _Link | None = None) -> None:
        self.sock = sock
        self.role = role
        self.inbuf: bytearray | None = None  # bytes of a frame not complete yet
        self.out: deque[memoryview] = deque()  # unsent output, oldest first
        self.out_bytes = 0
        self.link = link


class _Link:
    """An outbound link to another node; ``conn`` is None while it is down."""

    __slots__ = ("addr", "conn", "retry_at")

    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr
        self.conn: _Conn | None = None
        self.retry_at = 0.0


class ChatServer:
    def __init__(self, listeners: list[socket.socket], framing: Framing, max_frame: int,
                 peers: list[tuple[str, int]] | tuple = (), index: int = 0,
                 out_limit: int = OUT_LIMIT) -> None:
        self._listeners = listeners
        self._framing = framing
        self._max_frame = max_frame
        self._out_limit = out_limit
        self._links = [_Link(addr) for addr in peers]
        self._clients: dict[_Conn, None] = {}  # insertion-ordered set
        self._sel = selectors.DefaultSelector()
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._hello_wire = framing.encode(hello(index))
        self._hello_fixed = self._hello_wire[:framing.header + len(HELLO_MAGIC)]
        self._linked = not self._links

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [address_of(s) for s in self._listeners]

    def serve(self, stopper: Stopper,
              on_ready: Callable[[list[tuple[str, int]]], None] | None = None) -> None:
        """Serve until ``stopper`` fires. ``on_ready`` runs once every link is up."""
        for lsock in self._listeners:
            self._sel.register(lsock, EVENT_READ, LISTENER)
        for sock in stopper.socks:
            self._sel.register(sock, EVENT_READ, stopper)
        for link in self._links:
            self._connect(link)
        try:
            while not stopper.stopped:
                if self._linked and on_ready is not None:
                    on_ready(self.addresses)
                    on_ready = None
                self._round(stopper)
        finally:
            self._close_all()

    def _round(self, stopper: Stopper) -> None:
        events = self._sel.select(self._timeout())
        # Accept first: a client whose connect completed before a message arrived is in
        # the room when that message is delivered.
        for key, _ in events:
            if key.data is LISTENER:
                self._accept(cast(socket.socket, key.fileobj))
        for key, mask in events:
            conn = key.data
            if conn.__class__ is _Conn:
                if mask & EVENT_WRITE and conn.role is not CLOSED:
                    self._writable(conn)
                if mask & EVENT_READ and conn.role is not CLOSED:
                    self._readable(conn)
            elif conn is stopper:
                stopper.readable(key.fileobj)
        self._retry_links()

    def _timeout(self) -> float | None:
        down = [link.retry_at for link in self._links if link.conn is None]
        if not down:
            return None
        return max(0.0, min(down) - time.monotonic())

    # -- clients ---------------------------------------------------------------------

    def _accept(self, lsock: socket.socket) -> None:
        for sock in accept_ready(lsock):
            conn = _Conn(sock, UNKNOWN)
            self._sel.register(sock, EVENT_READ, conn)
            self._clients[conn] = None

    def _readable(self, conn: _Conn) -> None:
        n = read_into(conn.sock, self._buf)
        if not n:
            if n == 0:
                self._close(conn)
            return
        if conn.role is PEER_OUT:
            return  # whatever the peer sends down our outbound link is not for us
        if conn.inbuf is not None:
            conn.inbuf += self._view[:n]
            data, end = conn.inbuf, len(conn.inbuf)
        else:
            data, end = self._buf, n
        start = self._identify(conn, data, end) if conn.role is UNKNOWN else 0
        if start < 0:  # could still be a link's hello: wait for more
            _keep_tail(conn, data, 0, end)
            return
        try:
            _, cut = self._framing.cut(data, start, end, self._max_frame)
        except FrameError:
            self._close(conn)
            return
        chunk = _take(data, start, cut) if cut > start else None
        _keep_tail(conn, data, cut, end)
        if chunk is not None:
            self._deliver(chunk, to_links=conn.role is not PEER_IN)

    def _identify(self, conn: _Conn, data: bytearray, end: int) -> int:
        """Offset where frames start, after a link's hello; -1 while it cannot be told."""
        fixed = self._hello_fixed
        k = min(end, len(fixed))
        if data[:k] != fixed[:k]:
            conn.role = CLIENT
            return 0
        if end < len(self._hello_wire):
            return -1
        conn.role = PEER_IN
        del self._clients[conn]
        return len(self._hello_wire)

    def _deliver(self, chunk: bytes, to_links: bool) -> None:
        for conn in tuple(self._clients):
            self._send(conn, chunk)
        if to_links:
            for link in self._links:
                if link.conn is not None and link.conn.role is PEER_OUT:
                    self._send(link.conn, chunk)

    # -- output ----------------------------------------------------------------------

    def _send(self, conn: _Conn, data: bytes) -> None:
        """Write ``data`` now if nothing is queued, queue what is left."""
        if conn.out:
            self._queue(conn, memoryview(data))
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < len(data):
            self._sel.modify(conn.sock, EVENT_READ | EVENT_WRITE, conn)
            self._queue(conn, memoryview(data)[sent:])

    def _queue(self, conn: _Conn, view: memoryview) -> None:
        conn.out.append(view)
        conn.out_bytes += len(view)
        if conn.out_bytes > self._out_limit:
            self._close(conn)  # too slow a reader

    def _writable(self, conn: _Conn) -> None:
        if conn.role is LINKING:
            self._connected(conn)
            return
        out = conn.out
        try:
            sent = conn.sock.sendmsg(list(itertools.islice(out, SENDMSG_MAX)))
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        conn.out_bytes -= sent
        while sent:
            head = out[0]
            if sent < len(head):
                out[0] = head[sent:]
                break
            sent -= len(head)
            out.popleft()
        if not out:
            self._sel.modify(conn.sock, EVENT_READ, conn)

    # -- links -----------------------------------------------------------------------

    def _connect(self, link: _Link) -> None:
        host, port = link.addr
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(link.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            link.retry_at = time.monotonic() + RETRY_S
            return
        link.conn = _Conn(sock, LINKING, link)
        self._sel.register(sock, EVENT_WRITE, link.conn)

    def _connected(self, conn: _Conn) -> None:
        if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._close(conn)
            return
        conn.role = PEER_OUT
        self._sel.modify(conn.sock, EVENT_READ, conn)
        self._send(conn, self._hello_wire)
        self._linked = self._linked or all(
            link.conn is not None and link.conn.role is PEER_OUT for link in self._links)

    def _retry_links(self) -> None:
        now = time.monotonic()
        for link in self._links:
            if link.conn is None and link.retry_at <= now:
                self._connect(link)

    # -- closing ---------------------------------------------------------------------

    def _close(self, conn: _Conn) -> None:
        """The one way a connection ends: reset, EOF, bad frame, slow reader, shutdown."""
        if conn.role is CLOSED:
            return
        if conn.role in (UNKNOWN, CLIENT):
            del self._clients[conn]
        if conn.link is not None:
            conn.link.conn = None
            conn.link.retry_at = time.monotonic() + RETRY_S
        conn.role = CLOSED
        conn.out.clear()
        conn.inbuf = None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()

    def _close_all(self) -> None:
        close_all(self._sel, self._listeners, _Conn, self._close)


def _take(data: bytearray, start: int, end: int) -> bytes:
    with memoryview(data) as view:
        return bytes(view[start:end])


def _keep_tail(conn: _Conn, data: bytearray, cut: int, end: int) -> None:
    """Keep ``data[cut:end]`` (a partial frame) in the connection's buffer."""
    if data is conn.inbuf:
        if cut:
            del data[:cut]
        if not data:
            conn.inbuf = None
    elif cut < end:
        conn.inbuf = bytearray(data[cut:end])
