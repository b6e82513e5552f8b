"""HTTP/1.1 keep-alive over in-order matching: the protocol of an ``http://`` target.

Requests are one fixed request (built once as bytes by the workload) repeated, or picked
from the pre-rendered pools of a [[requests]] table (harness.wire.reqtable), one pool per kind;
their
stamps wait in :class:`~harness.wire.protocol.InOrder`'s per-connection FIFO, so the k-th
response on a connection answers its k-th request. Responses are cut by a small hand
parser (``bytes.find`` over the round buffer, once per response; a head seen lately is
looked up, not parsed again, as a server's heads repeat, Date included): the status line, the
headers, a ``Content-Length`` or chunked body (no body for 204, 304 and answers to HEAD);
1xx responses are skipped (they join the final response's frame); a response with
``Connection: close`` (or HTTP/1.0 without ``keep-alive``) ends the connection's stream (the
worker closes it and reopens it when the next request is due, a reconnect, as after a
server's close between requests); a body with no length runs to the peer's close
(:meth:`Http.at_eof`). A response that breaks HTTP (a bad status line, a bad or
conflicting ``Content-Length``, a bad chunk line or chunk end, headers over
:data:`MAX_HEADER` or ``--max-frame``, a body over ``--max-frame``) is a protocol error on
that connection. tests/test_http_parse.py holds this parser to h11's reading of generated
streams; header-field syntax is not checked (a line without a colon passes).

Why not ``httptools``: llhttp parses faster on its own (tests/bench/http_parse.py), but it
is a stateful object per connection that reports responses through Python callbacks and
never says where in the bytes a response ended, while the transport keeps whole frames in
the round buffer and a partial one for the next read; here that cut falls out of the same
walk, a response costs a few ``find`` calls, and a head seen before only a dict lookup.

Sizes are bytes; times ns of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import re

import numpy as np

from harness.core.users import KindPicker
from harness.protocols.http.flows import Flows
from harness.wire import stamp
from harness.wire.batch import Outbound
from harness.wire.framing import Framing
from harness.wire.inbound import Parsed
from harness.wire.protocol import InOrder, pooled

MAX_HEADER = 64 * 1024  # most bytes of a response's status line and headers
_NO_BODY = (204, 304)
NO_BODY, CHUNKED, TO_EOF = -1, -2, -3  # body lengths of _describe that are not a size
MAX_TEMPLATE = 4096  # longest response the transport's fast path remembers
SEEN_HEADS = 1024  # most response heads remembered per step and worker (then forgotten)
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([1-9][0-9][0-9])(?:[ \r]|\Z)")
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\r\n]*)?[ \t]*")  # size [;ext] OWS


class BadResponse(Exception):
    """The stream broke HTTP at this point."""


class Http(InOrder):
    """HTTP/1.1 responses, matched in order; ``codes`` holds the status of each response
    of the last parsed round, ``closing`` the connections whose last response said
    ``Connection: close``."""

    def __init__(self, request: bytes | list[tuple[bytes, ...]], framing: Framing,
                 out: Outbound, max_frame: int, key: int, n: int, worker: int,
                 users: tuple[tuple, np.ndarray | None] = ((), None),
                 flows: tuple[list[tuple[str, ...]], np.ndarray] | None = None) -> None:
        super().__init__(framing, out, max_frame, key, n, worker)
        classes, self.classes = users  # [[users]]: each connection's class picks its kinds
        self.picker = KindPicker(classes) if classes and self.classes is not None else None
        # classes that read responses (flows, captures, checks, cookies): their state
        self.flows = Flows(classes, flows[0], self.classes, flows[1]) \
            if flows is not None and self.classes is not None else None
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
        self.head_kinds = np.asarray([p[0].startswith(b"HEAD ") for p in pools], dtype=bool)
        self.heads = bool(self.head_kinds.any())  # some requests are HEAD: bodiless answers
        self.cut_n = np.zeros(n, dtype=np.int64)  # final responses cut this round, per conn
        self.cutting = 0  # the connection being cut
        self.seen: dict[bytes, tuple[int, bool, int]] = {}  # head -> _describe(head)

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        n = len(gid)
        if self.flows is not None:
            return self._build_flows(gid, idx, counts, seq0, tint, delay)
        kinds = np.zeros(n, dtype=np.uint16) if self.request is not None \
            else self._kinds(gid, idx, counts)
        st = stamp.make(gid, np.arange(seq0, seq0 + n, dtype=np.uint32), kinds,
                        self.worker, delay, tint, self.key)
        self._push(idx, counts, st)
        if self.request is not None:
            ends = np.arange(1, n + 1, dtype=np.int64) * len(self.request)
            return memoryview(self.request * n), ends, kinds
        data, ends = pooled(kinds, self.out.rng, (self.flat, self.lens, self.pool_len, self.base))
        return data, ends, kinds

    def _build_flows(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
                     tint: np.ndarray | int, delay: np.ndarray | int
                     ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """:meth:`build` for users with state: each connection's next request in its flow,
        the pre-rendered bytes finished where a captured variable or a cookie goes in."""
        assert self.flows is not None
        n = len(gid)
        kinds = self.flows.kinds(idx, counts, self.out.rng.random(n))
        st = stamp.make(gid, np.arange(seq0, seq0 + n, dtype=np.uint32), kinds,
                        self.worker, delay, tint, self.key)
        self._push(idx, counts, st)
        pick = self.base[kinds] + (self.out.rng.random(n) * self.pool_len[kinds]).astype(np.int64)
        parts = [self.flat[j] for j in pick.tolist()]
        self.flows.render(kinds, idx.repeat(counts), parts)
        ends = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=n))
        return memoryview(b"".join(parts)), ends, kinds

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
        self.cutting = i
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
            if self.flows is not None:
                self._flow_response(buf, i, frame, pos, code)
            if self.heads or self.flows is not None:
                self.cut_n[i] += 1
            elif not close and pos - frame <= MAX_TEMPLATE:
                self._learn(buf, frame, pos, code)
            frame = pos
            if close:  # nothing after it belongs to this connection's exchange
                self.closing.append(i)
                return pos, pos
        return frame, end

    def _learn(self, buf: bytearray, a: int, b: int, code: int) -> None:
        """``buf[a:b]`` is one whole keep-alive response (1xx before it included), whose end
        its bytes alone fix: the transport takes reads equal to it without a cut. (Not with
        HEAD requests in the run: then a response's end depends on the request.)"""
        if b - a != len(self.tmpl) or not buf.startswith(self.tmpl, a):
            self.tmpl = bytes(buf[a:b])
            self.tmpl_code = code
            self.rep = memoryview(self.tmpl * max(1, 2 * MAX_TEMPLATE // len(self.tmpl)))

    def at_eof(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None
               ) -> int:
        """The peer closed with ``buf[start:end]`` pending: a response whose body runs to
        the close is whole now. Returns where what was taken ends (``start``: nothing, the
        bytes are a cut-off response)."""
        assert walk is not None
        self.cutting = i
        pos = start
        try:  # 1xx first: they join the final response
            while (got := self._response(buf, pos, end, eof=True)) and got[1] < 200:
                pos = got[0]
        except BadResponse:
            return start
        if got is None or got[0] != end:
            return start
        walk.append(start)
        self.round_codes.append(got[1])
        if self.flows is not None:
            self._flow_response(buf, i, start, end, got[1])
        if self.heads or self.flows is not None:
            self.cut_n[i] += 1
        self.closing.append(i)
        return end

    def _response(self, buf: bytearray, pos: int, end: int, eof: bool = False
                  ) -> tuple[int, int, bool] | None:
        """One response at ``pos``: (its end, its status, whether the connection closes
        after it), or None when it is not whole yet (``eof``: no more bytes will come)."""
        hdr_end = buf.find(b"\r\n\r\n", pos, min(end, pos + self.max_header))
        if hdr_end < 0:
            if end - pos >= self.max_header:
                raise BadResponse
            if end - pos >= 12 and buf[pos:pos + 7] != b"HTTP/1.":
                raise BadResponse  # not HTTP at all: do not wait for 64 KiB of it
            return None
        raw = bytes(buf[pos:hdr_end])
        got = self.seen.get(raw)
        if got is None:  # a head not seen lately (a server's heads repeat, Date included)
            got = _describe(raw)
            if len(self.seen) >= SEEN_HEADS:
                self.seen.clear()
            self.seen[raw] = got
        code, close, length = got
        body = hdr_end + 4
        if length == NO_BODY or (self.heads and code >= 200 and self._answers_head()):
            return body, code, close
        done = self._body(buf, length, body, end, eof)
        return None if done is None else (done, code, close)

    def _body(self, buf: bytearray, length: int, body: int, end: int, eof: bool) -> int | None:
        """Where the body starting at ``body`` ends, or None when it is not whole yet (a
        body without a length ends only with the stream: ``eof``)."""
        if length == CHUNKED:
            return self._chunked(buf, body, end)
        if length == TO_EOF:
            if end - body > self.max_frame:
                raise BadResponse
            return end if eof else None
        if length > self.max_frame:
            raise BadResponse
        return body + length if body + length <= end else None

    def _flow_response(self, buf: bytearray, i: int, a: int, b: int, code: int) -> None:
        """Response ``buf[a:b]`` of connection ``i`` to its users' state (captures, checks,
        cookies), with the kind of the request it answers (none waiting: nothing)."""
        assert self.flows is not None
        at = self.head[i] + self.cut_n[i]
        if at < self.tail[i]:
            kind = int(self.ring[i, at % self.ring.shape[1]]["kind"])
            if self.flows.reads[kind] or self.flows.jar_on[i]:
                self.flows.response(i, kind, code, bytes(buf[a:b]))

    def _answers_head(self) -> bool:
        """Whether the response being cut answers a HEAD request (no body, whatever its
        headers say): looked up in the connection's queue (only when the run sends HEAD)."""
        i = self.cutting
        at = self.head[i] + self.cut_n[i]
        if at >= self.tail[i]:
            return False  # answers nothing: a protocol error when matched
        return bool(self.head_kinds[self.ring[i, at % self.ring.shape[1]]["kind"]])

    def _chunked(self, buf: bytearray, pos: int, end: int) -> int | None:
        """The end of a chunked body starting at ``pos`` (trailers included), or None."""
        start = pos
        while True:
            eol = buf.find(b"\r\n", pos, min(end, pos + 1024))
            if eol < 0:
                if end - pos >= 1024:
                    raise BadResponse
                return None
            m = _CHUNK_LINE.fullmatch(buf, pos, eol)
            if m is None:
                raise BadResponse
            size = int(m[1], 16)
            if pos + size - start > self.max_frame:
                raise BadResponse
            if size == 0:
                return self._trailers(buf, eol + 2, end)
            pos = eol + 2 + size + 2
            crlf = buf[pos - 2:min(pos, end)]  # what has come of the CRLF after the data
            if crlf != b"\r\n"[:len(crlf)]:
                raise BadResponse
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
        if self.heads or self.flows is not None:
            self.cut_n[:] = 0  # parse pops them from the queues
        return super().parse(buf, seg_conn, seg_end, seg_t, walk)

    def take_closing(self) -> list[int]:
        """The connections to close after this round (their server said so)."""
        out, self.closing = self.closing, []
        return out


def _describe(raw: bytes) -> tuple[int, bool, int]:
    """What a response head (status line and headers, case as sent) says: (status, whether
    the connection closes after it, body length: bytes, or NO_BODY, CHUNKED or TO_EOF).
    Raises BadResponse when it breaks HTTP."""
    code = _status(raw)
    if code < 200:
        return code, False, NO_BODY
    head = raw.lower()
    close = _closes(head)
    if code in _NO_BODY:
        if b"\r\ncontent-length:" in head:
            _length(head)  # no body whatever it says, but a bad one breaks HTTP
        return code, close, NO_BODY
    if b"\r\ntransfer-encoding:" in head:
        if _header(head, b"transfer-encoding").rpartition(b",")[2].strip() != b"chunked":
            raise BadResponse  # chunked not last: a body to EOF we do not read
        return code, close, CHUNKED
    size = _length(head)
    return code, close, TO_EOF if size is None else size


def _status(raw: bytes) -> int:
    """The status code of a response head (``HTTP/1.x NNN[ reason]``, case as sent)."""
    m = _STATUS_LINE.match(raw)
    if m is None:
        raise BadResponse
    return int(m[1])


def _closes(head: bytes) -> bool:
    """Whether the connection closes after this response (lower-cased head): ``close`` in
    its Connection header, or HTTP/1.0 without ``keep-alive``."""
    value = _header(head, b"connection") if b"\r\nconnection:" in head else b""
    if value in (b"", b"keep-alive", b"close"):  # the common cases, without a split
        return value == b"close" or (not value and head.startswith(b"http/1.0"))
    tokens = {t.strip() for t in value.split(b",")}
    return b"close" in tokens or (head.startswith(b"http/1.0") and b"keep-alive" not in tokens)


def _length(head: bytes) -> int | None:
    """The Content-Length of a lower-cased head, None when it has none. Several values
    (headers or a list) must agree; anything but digits breaks the stream."""
    value = _header(head, b"content-length")
    if value.isdigit() and head.count(b"\r\ncontent-length:") == 1:
        return int(value)
    if not value:
        return None
    at, values = 0, set[bytes]()
    while (at := head.find(b"\r\ncontent-length:", at) + 1) > 0:
        eol = head.find(b"\r\n", at + 1)
        line = head[at + 16:eol if eol >= 0 else len(head)]
        values.update(v.strip() for v in line.split(b","))
    if len(values) != 1 or not (v := values.pop()).isdigit():
        raise BadResponse
    return int(v)


def _header(head: bytes, name: bytes) -> bytes:
    """The value of header ``name`` in a lower-cased head (the last one wins), or b""."""
    at = head.rfind(b"\r\n" + name + b":")
    if at < 0:
        return b""
    at += len(name) + 3
    eol = head.find(b"\r\n", at)
    return head[at:eol if eol >= 0 else len(head)].strip()
