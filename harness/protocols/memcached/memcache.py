"""memcached's text protocol over in-order matching: the protocol of the ``memcached``
workload.

Replies are lines: ``STORED``, ``DELETED``, ``TOUCHED``, ``OK``, a number (incr/decr),
``VERSION ...`` (ok); ``END`` alone (a get that found nothing: ``mc_miss``, information);
``VALUE <key> <flags> <bytes> [<cas>]`` followed by the data block, as many as the get
asked for, then ``END`` (ok); ``ERROR``, ``CLIENT_ERROR ...``, ``SERVER_ERROR ...``,
``NOT_STORED``, ``EXISTS``, ``NOT_FOUND`` (error replies, counted as ``mc_ERROR``,
``mc_CLIENT_ERROR``, ...). A line is at most :data:`MAX_LINE` bytes, a whole reply at most
``--max-frame``; any other line breaks the stream (a protocol error on that connection).

Sizes are bytes.
"""

from __future__ import annotations

from harness.protocols.replies import MISS, OK, BadReply, Replies

MAX_LINE = 2048  # a reply line (keys are at most 250 bytes)
_OK_LINES = frozenset((b"STORED", b"DELETED", b"TOUCHED", b"OK"))
_ERRORS = frozenset((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR", b"NOT_STORED", b"EXISTS",
                     b"NOT_FOUND"))


class Memcache(Replies):
    """memcached text replies, matched in order."""

    prefix = "mc_"

    def _reply(self, buf: bytearray, pos: int, end: int) -> tuple[int, int] | None:
        eol = self._eol(buf, pos, end)
        if eol is None:
            return None
        line = bytes(buf[pos:eol])
        if line in _OK_LINES:
            return eol + 2, OK
        if line == b"END":
            return eol + 2, MISS
        if line.startswith(b"VALUE "):
            got = self._values(buf, pos, end)
            return None if got is None else (got, OK)
        word = line.split(b" ", 1)[0]
        if word in _ERRORS:
            return eol + 2, self.code(word)
        if line.isdigit() or word == b"VERSION":
            return eol + 2, OK
        raise BadReply

    def _eol(self, buf: bytearray, pos: int, end: int) -> int | None:
        eol = buf.find(b"\r\n", pos, min(end, pos + MAX_LINE))
        if eol < 0:
            if end - pos >= MAX_LINE:
                raise BadReply
            return None
        return eol

    def _values(self, buf: bytearray, pos: int, end: int) -> int | None:
        """The end of ``VALUE`` blocks and their ``END`` at ``pos``, or None."""
        while True:
            eol = self._eol(buf, pos, end)
            if eol is None:
                return None
            if eol == pos + 3 and buf[pos:eol] == b"END":
                return eol + 2
            parts = bytes(buf[pos:eol]).split(b" ")
            if parts[0] != b"VALUE" or len(parts) not in (4, 5):
                raise BadReply
            if not parts[3].isdigit() or len(parts[3]) > 18:
                raise BadReply
            size = int(parts[3])
            if size > self.max_frame:
                raise BadReply
            stop = eol + 2 + size
            if stop + 2 > end:
                return None
            if buf[stop:stop + 2] != b"\r\n":
                raise BadReply
            pos = stop + 2
