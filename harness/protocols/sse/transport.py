"""The transport of an SSE run: each connection is a receiver's ``GET`` event stream (the
transport's socket), and a sender also holds a keep-alive connection that carries its
``POST`` requests.

* The stream's connect writes the ``GET`` (with ``Last-Event-ID`` when the connection saw an
  id) and reads the response head: a status other than 200 is counted as
  ``connect_sse_<status>``, a content type other than ``text/event-stream`` as
  ``connect_sse_content_type`` (failed connects); a head that is not HTTP as ``protocol``.
  The connection counts as connected once the head is in (connect time includes it).
* A stream the server ends (the zero chunk, or its close between events) is reopened after
  the server's ``retry:`` (at once without one), with ``Last-Event-ID``: counted in
  ``reconnects`` once it is back, not an error (a reset is counted as ``reset`` too).
* POSTs: a sender's round of messages is written to its POST connection (queued while it
  connects or its buffer is full: the sender is then held, as a blocked socket is).
  Responses are read in order: a status other than 2xx is ``sse_post_<status>``; a POST
  with no response within ``--timeout`` is ``sse_post_timeout``; a server's close with
  POSTs unanswered ``sse_post_closed`` (the connection is reopened on the next send).

The POST sockets ride in the poller as numbers ``n + i``. Times are ns of
``time.monotonic_ns()``.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.core.result import Share
from harness.protocols.sse.post import ResponseError, Responses
from harness.protocols.sse.protocol import SseProtocol
from harness.wire.connects import head_kept, hello_send
from harness.wire.poller import READ, WRITE
from harness.wire.timer import Timer
from harness.wire.transport import STREAM_NONBLOCK, Transport, connect_kind

MAX_HEAD = 64 * 1024  # most bytes of a stream's response head
HEAD_END = b"\r\n\r\n"
MAX_RETRY_MS = 60_000  # a server's retry: is taken up to this


@dataclass(frozen=True, slots=True)
class StreamSetup:
    """Per target node, the head of its GET (without the blank line that ends it); the
    --timeout for POST responses."""

    gets: tuple[bytes, ...]
    timeout_ns: int


def get_request(host: str, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n").encode()


def head_verdict(head: bytes) -> tuple[str | None, bool]:
    """(None, chunked) for a response head that opens an event stream, else (its error
    kind, False)."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ")
    if not lines[0].startswith(b"HTTP/1.") or len(status) < 2 or not status[1].isdigit() \
            or len(status[1]) != 3:
        return "protocol", False
    if status[1] != b"200":
        return f"connect_sse_{int(status[1])}", False
    fields = {}
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if fields.get(b"content-type", b"").split(b";")[0].strip() != b"text/event-stream":
        return "connect_sse_content_type", False
    return None, b"chunked" in fields.get(b"transfer-encoding", b"")


class SseTransport(Transport):
    """GET streams as the connections, a POST connection beside each sender's."""

    def __init__(self, share: Share, *args, opts: StreamSetup,  # type: ignore[no-untyped-def]
                 **kwargs) -> None:
        super().__init__(share, *args, **kwargs)
        n = self.n
        self.sends = share.sends
        self.senders: list[int] = np.flatnonzero(share.sends).tolist()
        self.opts = opts
        proto = self.protocol
        assert isinstance(proto, SseProtocol)
        self.streams = proto.streams
        self.post_size = proto.requests.size
        self.heading = np.zeros(n, dtype=bool)  # the GET is written, its head awaited
        self.head: list[bytes] = [b""] * n
        self.back = np.zeros(n, dtype=bool)  # reopening: a reconnect once its head is in
        self.retry_at = np.zeros(n, dtype=np.int64)  # when a reopening is due (0: none)
        self.reopen: Callable[[int], None] = self._reopen_now  # the wire's (worker state)
        self.post: list[socket.socket | None] = [None] * n
        self.post_up = np.zeros(n, dtype=bool)
        self.post_out: list[bytes] = [b""] * n
        self.replies = [Responses() for _ in range(n)]
        self.asked: list[collections.deque[list[int]]] = [collections.deque() for _ in range(n)]
        self.skip = [0] * n  # responses still owed to POSTs already counted timed out

    # ------------------------------------------------------------------ the GET stream

    def opened(self, i: int, s: socket.socket, now: int) -> int:
        """TCP is up: write the GET (0: not settled until its head is in); a sender opens
        its POST connection."""
        request = self.opts.gets[int(self.node[i])]
        last = self.streams.last_id[i]
        if last:
            request += b"Last-Event-ID: " + last + b"\r\n"
        if hello_send(self, i, s, request + b"\r\n"):
            return 1
        self.heading[i] = True
        if self.post[i] is None and self.sends[i]:
            self._open_post(i)
        return 0

    def finish_connect(self, i: int) -> int:
        if i >= self.n:
            self._post_writable(i - self.n)
            return 0
        s = self.socks[i]
        if s is None or self.alive[i]:
            return 0
        if not self.heading[i]:
            return super().finish_connect(i)
        try:
            got = s.recv(MAX_HEAD, socket.MSG_PEEK)  # the events after the head stay queued
            data = self.head[i] + got
            end = data.find(HEAD_END)
            s.recv(len(got) if end < 0 else end + 4 - len(self.head[i]))
        except BlockingIOError:
            return 0
        except OSError as exc:
            kind = self.error_kind(exc)
            self.fail(i, "connect_reset" if kind == "reset" else kind)
            return 1
        if not got:
            self.fail(i, "closed")
            return 1
        if end < 0:
            return head_kept(self, self.head, i, data, MAX_HEAD)
        return self._head(i, data[:end + 4])

    def _head(self, i: int, data: bytes) -> int:
        """The whole response head is in: the stream opens (events after it are read as
        the socket's next reads), or its error is counted."""
        end = len(data) - 4
        kind, chunked = head_verdict(data[:end])
        if kind is not None:
            self.sink.unparsed(memoryview(data[:end + 4]))
            self.fail(i, kind)
            return 1
        self.head[i] = b""
        self.heading[i] = False
        self.streams.open(i, chunked)
        self.alive[i] = True
        now = time.monotonic_ns()
        if self.back[i]:
            self.back[i] = False
            self.sink.reconnected(now)
        self.sink.connected(i, now - int(self.started[i]))
        return 1

    def late_kind(self, i: int) -> str:
        return "connect_timeout"

    def close(self, i: int) -> None:
        self.heading[i] = False
        self.head[i] = b""
        super().close(i)

    def flush(self, i: int) -> None:
        if i >= self.n:
            self._post_writable(i - self.n)
        elif self.alive[i] or not self.heading[i]:
            super().flush(i)

    def read_round(self, ready: list[int]) -> None:
        """Heads go on, the open streams are read, then the streams that ended reopen."""
        alive = self.alive
        opening = [i for i in ready if not alive[i]]
        for i in opening:
            self.finish_connect(i)
        super().read_round([i for i in ready if alive[i]] if opening else ready)
        for i in self.streams.ended_now():
            if self.socks[i] is not None:
                self.reopen(i)

    def hung_up(self, i: int, kind: str) -> None:
        """The server closed (or reset) a stream: reopened with Last-Event-ID (an event it
        cut short is not dispatched, as the standard says); a reset is counted."""
        if kind != "closed":
            self.sink.error(kind, 1, time.monotonic_ns())
        self.reopen(i)

    def _reopen_now(self, i: int) -> None:
        self.close(i)
        self.reopen_at(i, time.monotonic_ns())

    def reopen_at(self, i: int, now: int) -> None:
        """Reopen stream ``i`` after the server's retry (ms; at once without one)."""
        retry = self.streams.retry_ms[i]
        self.back[i] = True
        self.retry_at[i] = now + max(min(retry, MAX_RETRY_MS), 0) * 1_000_000 + 1

    def tick(self, now: int, sending: bool, connect_timeout_ns: int) -> None:
        """Every ~100 ms: streams due to reopen; POSTs unanswered for --timeout."""
        if self.retry_at.any():
            for i in np.flatnonzero((self.retry_at > 0) & (self.retry_at <= now)).tolist():
                self.retry_at[i] = 0
                self.start_connect(i)
        self._post_timeouts(now)

    def poll(self, wait_s: float, timer: Timer | None) -> list[int]:
        """The readable streams; the POST connections' responses are read here."""
        ready = super().poll(wait_s, timer)
        n = self.n
        if ready and max(ready) >= n:
            for j in ready:
                if j >= n:
                    self._post_read(j - n)
            ready = [i for i in ready if i < n]
        return ready

    # ------------------------------------------------------------------ the POSTs

    def _open_post(self, i: int) -> None:
        family, addr = self.addrs[int(self.node[i])]
        s = socket.socket(family, STREAM_NONBLOCK)
        rc = s.connect_ex(addr)
        if rc not in (0, 115):  # EINPROGRESS
            s.close()
            self.fail(i, connect_kind(rc))
            return
        self.post[i] = s
        self.post_up[i] = False
        self.sel.register(s, WRITE, self.n + i)

    def _post_writable(self, i: int) -> None:
        s = self.post[i]
        if s is None:
            return
        if not self.post_up[i]:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._drop_post(i)
                self.fail(i, connect_kind(err))
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.post_up[i] = True
        data = self.post_out[i]
        if data:
            try:
                sent = s.send(data)
            except BlockingIOError:
                return
            except OSError as exc:
                self._post_broke(i, self.error_kind(exc))
                return
            self.post_out[i] = data = data[sent:]
        if not data:
            self.blocked[i] = False
            self.sel.modify(s, READ, self.n + i)

    def send_round(self, idx: np.ndarray | list[int], bounds: list[int], data: memoryview,
                   lag: object = None, failed: object = None) -> None:
        """One write per sender to its POST connection: ``data[bounds[k-1]:bounds[k]]``
        (``lag``, ``failed``: not used, the worker gives none to this transport)."""
        posts, size, a = self.post, self.post_size, 0
        now = time.monotonic_ns()
        for i, b in zip(idx if isinstance(idx, list) else idx.tolist(), bounds, strict=True):
            if posts[i] is None:
                self._open_post(i)
            s = posts[i]
            if s is None:  # (its connect failed at once: counted, the connection closed)
                a = b
                continue
            self.asked[i].append([now, (b - a) // size])
            if not self.post_up[i] or self.post_out[i]:
                self._post_queue(i, data[a:b])
                a = b
                continue
            try:
                sent = s.send(data[a:b])
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._post_broke(i, self.error_kind(exc))
                a = b
                continue
            if sent < b - a:
                self._post_queue(i, data[a + sent:b])
            a = b

    def _post_queue(self, i: int, rest: memoryview) -> None:
        """Keep unsent POST bytes and hold the sender until they are written."""
        s = self.post[i]
        if s is None:
            return
        self.post_out[i] += bytes(rest)
        self.blocked[i] = True
        self.sink.backlogged(i)
        if self.post_up[i]:
            self.sel.modify(s, READ | WRITE, self.n + i)

    def _post_read(self, i: int) -> None:
        s = self.post[i]
        if s is None:
            return
        try:
            got = s.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._post_broke(i, self.error_kind(exc))
            return
        if not got:
            self._post_broke(i, "sse_post_closed")
            return
        try:
            statuses = self.replies[i].feed(got)
        except ResponseError:
            self.sink.unparsed(memoryview(got))
            self._post_broke(i, "protocol", always=True)
            return
        self._answered(i, statuses)

    def _answered(self, i: int, statuses: list[int]) -> None:
        """Responses in: each answers the oldest POST still waiting; non-2xx counted."""
        q, bad = self.asked[i], collections.Counter[int]()
        for code in statuses:
            if self.skip[i]:
                self.skip[i] -= 1
                continue
            if q:
                q[0][1] -= 1
                if q[0][1] <= 0:
                    q.popleft()
            if not 200 <= code < 300:
                bad[code] += 1
        now = time.monotonic_ns()
        for code, count in bad.items():
            self.sink.error(f"sse_post_{code}", count, now)

    def _post_timeouts(self, now: int) -> None:
        late = 0
        limit = self.opts.timeout_ns
        for i in self.senders:
            q = self.asked[i]
            while q and now - q[0][0] > limit:
                k = q.popleft()[1]
                late += k
                self.skip[i] += k
        if late:
            self.sink.error("sse_post_timeout", late, now)

    def _post_broke(self, i: int, kind: str, always: bool = False) -> None:
        """The POST connection failed: counted (a close only with POSTs unanswered), closed;
        the next send reopens it."""
        waiting = sum(k for _, k in self.asked[i])
        if always or waiting or kind != "sse_post_closed":
            self.sink.error(kind, 1, time.monotonic_ns())
        self._drop_post(i)

    def _drop_post(self, i: int) -> None:
        s = self.post[i]
        if s is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s)
            s.close()
        self.post[i] = None
        self.post_up[i] = False
        self.post_out[i] = b""
        self.asked[i].clear()
        self.skip[i] = 0
        self.replies[i] = Responses()
        self.blocked[i] = False

    def close_all(self) -> None:
        for i in range(self.n):
            if self.post[i] is not None:
                self._drop_post(i)
        super().close_all()
