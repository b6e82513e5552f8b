"""redis RESP (version 2, and RESP3's null) over in-order matching: the protocol of the
``redis`` workload.

A reply is a simple string (``+OK``), an error (``-ERR ...``, ``-WRONGTYPE ...``: counted as
``redis_ERR``, ``redis_WRONGTYPE``, by the error's first word), an integer (``:1``), a bulk
string (``$5\\r\\nhello``, or the nil ``$-1``: counted as ``redis_miss``, information), or an
array (``*2 ...``, nil ``*-1``) of replies, nested at most :data:`MAX_DEPTH` deep. A line
is at most :data:`MAX_LINE` bytes (or ``--max-frame``), a bulk string or a whole reply at
most ``--max-frame``; a first byte that is no RESP type breaks the stream at once. Parsing
is a few ``bytes.find`` calls per reply on the round buffer (see :mod:`harness.protocols.replies`).

Sizes are bytes.
"""

from __future__ import annotations

from harness.protocols.replies import MISS, OK, BadReply, Replies, int_at

MAX_DEPTH = 16  # arrays inside arrays
MAX_LINE = 64 * 1024  # a simple string, an error, a length line
_TYPES = frozenset(b"+-:$*_")


class Resp(Replies):
    """RESP replies, matched in order."""

    prefix = "redis_"

    def _reply(self, buf: bytearray, pos: int, end: int) -> tuple[int, int] | None:
        nxt = self._value(buf, pos, end, 0)
        if nxt is None:
            return None
        t = buf[pos]
        if t == 45:  # -: an error, named by its first word
            line = bytes(buf[pos + 1:nxt - 2])
            return nxt, self.code(line.split(b" ", 1)[0])
        if t == 95 or (t in (36, 42) and nxt - pos == 5 and buf[pos + 1] == 45):
            return nxt, MISS  # _ (RESP3 null), $-1, *-1
        return nxt, OK

    def _value(self, buf: bytearray, pos: int, end: int, depth: int) -> int | None:
        """The end of the value at ``pos``, or None when it is not whole yet."""
        if pos >= end:
            return None
        t = buf[pos]
        if t not in _TYPES:
            raise BadReply
        line_max = min(self.max_frame, MAX_LINE)
        eol = buf.find(b"\r\n", pos, min(end, pos + line_max))
        if eol < 0:
            if end - pos >= line_max:
                raise BadReply
            return None
        if t in (43, 45):  # + -
            return eol + 2
        if t == 95:  # _
            if eol != pos + 1:
                raise BadReply
            return eol + 2
        n = int_at(buf, pos + 1, eol)
        if t == 58:  # :
            return eol + 2
        if t == 36:  # $
            return self._bulk(buf, eol + 2, end, n)
        return self._array(buf, eol + 2, end, n, depth)

    def _bulk(self, buf: bytearray, pos: int, end: int, n: int) -> int | None:
        if n == -1:
            return pos
        if n < 0 or n > self.max_frame:
            raise BadReply
        stop = pos + n
        if stop + 2 > end:
            return None
        if buf[stop:stop + 2] != b"\r\n":
            raise BadReply
        return stop + 2

    def _array(self, buf: bytearray, pos: int, end: int, n: int, depth: int) -> int | None:
        if n == -1:
            return pos
        if n < 0 or n > self.max_frame // 3 or depth >= MAX_DEPTH:
            raise BadReply
        for _ in range(n):
            nxt = self._value(buf, pos, end, depth + 1)
            if nxt is None:
                return None
            pos = nxt
        return pos
