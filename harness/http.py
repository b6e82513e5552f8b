"""HTTP/1.1 keep-alive over in-order matching: the protocol of an ``http://`` target.

Requests are one fixed request (built once as bytes by the workload) repeated, or picked
from the pre-rendered pools of a [[requests]] table (harness.reqtable), one pool per kind; their
stamps wait in :class:`~harness.protocol.InOrder`'s per-connection FIFO, so the k-th
response on a connection answers its k-th request. Responses are cut by a small hand
parser (``bytes.find`` over the round buffer, once per response): the status line, the
headers, a ``Content-Length`` or chunked body; 1xx responses are skipped (they join the
final response's frame); a response with ``Connection: close`` ends the connection's
stream (the worker closes it and reconnects, counted). A response that breaks HTTP (a bad
status line, headers over :data:`MAX_HEADER` or ``--max-frame``, a body over
``--max-frame``, no length) is a protocol error on that connection.

Why not ``httptools``: its parser is an object per connection with a Python callback per
response and per header; here a response costs a few ``find`` calls on bytes already in the
round buffer, and the whole-frame cut the transport needs falls out of the same walk.

Sizes are bytes; times ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import numpy as np

from harness import stamp
from harness.batch import Outbound, Parsed
from harness.framing import Framing
from harness.protocol import InOrder
from harness.users import KindPicker

MAX_HEADER = 64 * 1024  # most bytes of a response's status line and headers
_NO_BODY = (204, 304)


class BadResponse(Exception):
    """The stream broke HTTP at this point."""


class Http(InOrder):
    """HTTP/1.1 responses, matched in order; ``codes`` holds the status of each response
    of the last parsed round, ``closing`` the connections whose last response said
    ``Connection: close``."""

    def __init__(self, request: bytes | list[tuple[bytes, ...]], framing: Framing,
                 out: Outbound, max_frame: int, key: int, n: int, worker: int,
                 users: tuple[tuple, np.ndarray | None] = ((), None)) -> None:
        super().__init__(framing, out, max_frame, key, n, worker)
        classes, self.classes = users  # [[users]]: each connection's class picks its kinds
        self.picker = KindPicker(classes) if classes and self.classes is not None else None
        pools = [(request,)] if isinstance(request, bytes) else request
        self.request = pools[0][0] if len(pools) == 1 and len(pools[0]) == 1 else None
        self.flat = [r for pool in pools for r in pool]  # every rendering, kind by kind
        self.lens = np.asarray([len(r) for r in self.flat], dtype=np.int64)
        self.pool_len = np.asarray([len(p) for p in pools], dtype=np.int64)
        self.base = np.cumsum(self.pool_len) - self.pool_len  # each kind's first in flat
        self.walks = True
        self.fixed = None
        self.max_header = min(MAX_HEADER, max_frame)
        self.round_codes: list[int] = []  # per response cut this round, in walk order
        self.codes = np.zeros(0, dtype=np.int64)
        self.closing: list[int] = []

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        n = len(gid)
        kinds = np.zeros(n, dtype=np.uint16) if self.request is not None \
            else self._kinds(gid, idx, counts)
        st = stamp.make(gid, np.arange(seq0, seq0 + n, dtype=np.uint32), kinds,
                        self.worker, delay, tint, self.key)
        self._push(idx, counts, st)
        if self.request is not None:
            ends = np.arange(1, n + 1, dtype=np.int64) * len(self.request)
            return memoryview(self.request * n), ends, kinds
        sizes = self.pool_len[kinds]
        pick = self.base[kinds] + (self.out.rng.random(n) * sizes).astype(np.int64)
        flat = self.flat
        data = b"".join([flat[j] for j in pick.tolist()])  # pre-rendered: no formatting here
        return memoryview(data), np.cumsum(self.lens[pick]), kinds

    def _kinds(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Each message's request: by weight over the table, or within its connection's
        user class."""
        if self.picker is None or self.classes is None:
            return self.out.pick_kinds(gid)
        return self.picker.pick(self.classes[idx].repeat(counts), self.out.rng.random(len(gid)))

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None,
            broken: list[int]) -> tuple[int, int]:
        """Whole responses of ``buf[start:end]``: their starts go to ``walk``, their codes
        to the round's; returns where they stop and where the kept bytes end."""
        assert walk is not None
        pos = frame = start
        while pos < end:
            try:
                got = self._response(buf, pos, end)
            except BadResponse:
                broken.append(i)
                return frame, frame
            if got is None:
                break
            pos, code, close = got
            if code < 200:  # informational: the final response follows in the same frame
                continue
            walk.append(frame)
            self.round_codes.append(code)
            frame = pos
            if close:  # nothing after it belongs to this connection's exchange
                self.closing.append(i)
                return pos, pos
        return frame, end

    def _response(self, buf: bytearray, pos: int, end: int) -> tuple[int, int, bool] | None:
        """One response at ``pos``: (its end, its status, Connection: close), or None when
        it is not whole yet."""
        hdr_end = buf.find(b"\r\n\r\n", pos, min(end, pos + self.max_header))
        if hdr_end < 0:
            if end - pos >= self.max_header:
                raise BadResponse
            if end - pos >= 12 and buf[pos:pos + 7] != b"HTTP/1.":
                raise BadResponse  # not HTTP at all: do not wait for 64 KiB of it
            return None
        head = bytes(buf[pos:hdr_end]).lower()
        code = _status(head)
        body = hdr_end + 4
        if code < 200 or code in _NO_BODY:
            return body, code, False
        close = _header(head, b"connection") == b"close"
        if _header(head, b"transfer-encoding").endswith(b"chunked"):
            done = self._chunked(buf, body, end)
            return None if done is None else (done, code, close)
        length = _header(head, b"content-length")
        if not length.isdigit():
            raise BadResponse  # no length (read to close) or a bad one: not in keep-alive
        size = int(length)
        if size > self.max_frame:
            raise BadResponse
        return (body + size, code, close) if body + size <= end else None

    def _chunked(self, buf: bytearray, pos: int, end: int) -> int | None:
        """The end of a chunked body starting at ``pos`` (trailers included), or None."""
        start = pos
        while True:
            eol = buf.find(b"\r\n", pos, min(end, pos + 1024))
            if eol < 0:
                if end - pos >= 1024:
                    raise BadResponse
                return None
            try:
                size = int(bytes(buf[pos:eol]).partition(b";")[0], 16)
            except ValueError:
                raise BadResponse from None
            if size < 0 or pos + size - start > self.max_frame:
                raise BadResponse
            if size == 0:
                return self._trailers(buf, eol + 2, end)
            pos = eol + 2 + size + 2
            if pos > end:
                return None

    def _trailers(self, buf: bytearray, pos: int, end: int) -> int | None:
        if buf[pos:pos + 2] == b"\r\n":
            return pos + 2
        t = buf.find(b"\r\n\r\n", pos, min(end, pos + self.max_header))
        if t < 0:
            if end - pos >= self.max_header:
                raise BadResponse
            return None
        return t + 4

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        self.codes = np.asarray(self.round_codes, dtype=np.int64)
        self.round_codes.clear()
        return super().parse(buf, seg_conn, seg_end, seg_t, walk)

    def take_closing(self) -> list[int]:
        """The connections to close after this round (their server said so)."""
        out, self.closing = self.closing, []
        return out


def _status(head: bytes) -> int:
    """The status code of a lower-cased response head."""
    if not head.startswith(b"http/1.") or len(head) < 12 or head[8:9] != b" " \
            or not head[9:12].isdigit() or head[12:13] not in (b" ", b"\r", b""):
        raise BadResponse
    return int(head[9:12])


def _header(head: bytes, name: bytes) -> bytes:
    """The value of header ``name`` in a lower-cased head (the last one wins), or b""."""
    at = head.rfind(b"\r\n" + name + b":")
    if at < 0:
        return b""
    at += len(name) + 3
    eol = head.find(b"\r\n", at)
    return head[at:eol if eol >= 0 else len(head)].strip()
