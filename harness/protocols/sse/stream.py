"""The bytes of Server-Sent Events streams, sans-I/O: the body of each ``GET`` response
decoded in place in the round buffer, so that what stays there is whole events, back to back,
every line ended by one ``\\n``.

Per read of a connection (:meth:`Streams.cut`): the chunked transfer coding taken off (when
the response had it; the zero chunk ends the stream), ``\\r\\n`` and lone ``\\r`` line ends
turned into ``\\n`` (a ``\\r`` that ends one read and a ``\\n`` that begins the next are one
line end), a byte order mark at the start dropped, then the whole events (up to the last
blank line) kept for the round and the rest left pending. The last ``id:`` and ``retry:``
of the whole events are kept per connection (``Last-Event-ID`` on a reconnect, its delay).
An event that is still not whole after ``max_frame`` bytes (a line too long, an oversize
event) breaks the stream.

The event stream format is the WHATWG HTML standard's ("9.2 Server-sent events"). Sizes are
bytes.
"""

from __future__ import annotations

BOM = b"\xef\xbb\xbf"
MAX_SIZE_LINE = 1024  # most bytes of a chunk-size line (extensions included)
CRLF = b"\r\n"


class StreamError(ValueError):
    """A stream that cannot be decoded (a broken chunk): the connection breaks."""


def dechunk(data: bytes, left: int) -> tuple[bytes, int, int, bool]:
    """Take the chunked transfer coding off ``data``: ``left`` is what the stream still owed
    of its current chunk (its data and closing CRLF; 0: a size line comes next). Returns
    (the decoded bytes, bytes of ``data`` used, what is owed after them, whether the zero
    chunk ended the body). A partial size line is left unused; a bad one raises StreamError."""
    out: list[bytes] = []
    pos, n = 0, len(data)
    while pos < n:
        if left:
            take = min(left, n - pos)
            body = max(min(left - 2, take), 0)  # the chunk's own bytes among them
            if body:
                out.append(data[pos:pos + body])
            crlf_at = 2 - min(left, 2)  # where in its CRLF the stream stands
            if data[pos + body:pos + take] != CRLF[crlf_at:crlf_at + take - body]:
                raise StreamError("a chunk does not end in CRLF")
            pos += take
            left -= take
            continue
        eol = data.find(CRLF, pos)
        if eol < 0:
            if n - pos > MAX_SIZE_LINE:
                raise StreamError("a chunk-size line too long")
            break
        size = _chunk_size(data[pos:eol])
        pos = eol + 2
        if size == 0:
            return b"".join(out), pos, 0, True
        left = size + 2
    return b"".join(out), pos, left, False


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()
    if not text or len(text) > 15 or text.strip(b"0123456789abcdefABCDEF"):
        raise StreamError(f"a bad chunk-size line {line[:40]!r}")
    return int(text, 16)


class Streams:
    """The decoding state of every connection's event stream: its transfer coding, what it
    owes of a chunk, how much of its pending bytes are decoded already, a ``\\r`` that ended
    its last read, its last event id and retry (ms), and which streams ended this round."""

    def __init__(self, n: int, max_frame: int) -> None:
        self.max_frame = max_frame
        self.chunked = [False] * n
        self.left = [0] * n  # bytes owed of the current chunk (chunked streams)
        self.decoded = [0] * n  # bytes at the start of the pending tail already decoded
        self.cr = [False] * n  # the last decoded byte was a \r (a \n next is its pair)
        self.fresh = [True] * n  # no body byte yet (a byte order mark may come)
        self.last_id: list[bytes] = [b""] * n
        self.retry_ms = [-1] * n  # the server's retry: (ms; -1: none)
        self.ended: list[int] = []  # streams whose body ended (the zero chunk) this round
        self.over = [False] * n  # its body ended: what follows (trailers) is dropped

    def open(self, i: int, chunked: bool) -> None:
        """Connection ``i``'s response head was read: its body starts (the last id stays)."""
        self.chunked[i] = chunked
        self.left[i] = self.decoded[i] = 0
        self.cr[i] = self.over[i] = False
        self.fresh[i] = True

    def cut(self, buf: bytearray, i: int, start: int, end: int) -> tuple[int, int, bool]:
        """``buf[start:end]`` is connection ``i``'s pending bytes and its read: decode it in
        place, and return where its whole events end, where its bytes now end, and False
        when an event went over max_frame with no end (the stream broke after the whole
        events). Raises StreamError on a broken chunk."""
        raw_at = start + self.decoded[i]
        if self.chunked[i] or self.cr[i] or self.fresh[i] or buf.find(b"\r", raw_at, end) >= 0:
            text, rest = self._decode(i, bytes(buf[raw_at:end]))
            mid = raw_at + len(text)
            buf[raw_at:mid] = text
            new_end = mid + len(rest)
            buf[mid:new_end] = rest
        else:  # plain LF text: already decoded where it lies
            mid = new_end = end
        blank = buf.rfind(b"\n\n", start, mid)
        cut = blank + 2 if blank >= 0 else start
        ok = mid - cut <= self.max_frame
        if not ok:  # an event over max_frame and no end yet: the stream breaks
            new_end = cut
        self.decoded[i] = mid - cut
        if cut > start:
            self._fields(buf, i, start, cut)
            if not _has_data(buf, start, cut):  # comments (heartbeats), ids: no delivery
                buf[start:start + new_end - cut] = buf[cut:new_end]
                return start, start + new_end - cut, ok
        return cut, new_end, ok

    def _decode(self, i: int, raw: bytes) -> tuple[bytes, bytes]:
        """The decoded text of ``raw`` and its bytes still undecoded (a partial size line)."""
        rest = b""
        if self.over[i]:
            return b"", b""
        if self.chunked[i]:
            text, used, self.left[i], done = dechunk(raw, self.left[i])
            if done:
                self.over[i] = True
                self.ended.append(i)
            else:
                rest = raw[used:]
        else:
            text = raw
        if not text:
            return text, rest
        if self.fresh[i]:  # a byte order mark may begin the body
            if len(text) < 3 and BOM.startswith(text) and not self.chunked[i]:
                return b"", text  # (decoded once more bytes come)
            self.fresh[i] = False
            text = text.removeprefix(BOM)
        if self.cr[i] and text[:1] == b"\n":
            text = text[1:]
        self.cr[i] = text.endswith(b"\r")
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return text, rest

    def _fields(self, buf: bytearray, i: int, start: int, cut: int) -> None:
        """The last ``id`` and ``retry`` fields among the whole events ``buf[start:cut]``."""
        if buf.find(b"id", start, cut) >= 0:  # (a cheap look first: most reads have one)
            value = _last_field(buf, b"id", start, cut)
            if value is not None and b"\0" not in value:
                self.last_id[i] = value
        if buf.find(b"retry", start, cut) >= 0:
            value = _last_field(buf, b"retry", start, cut)
            if value is not None and value.isdigit():
                self.retry_ms[i] = int(value)

    def ended_now(self) -> list[int]:
        """The streams that ended this round (each once)."""
        out, self.ended = self.ended, []
        return out


def _has_data(buf: bytearray, start: int, end: int) -> bool:
    """Whether the whole events ``buf[start:end]`` have a data line."""
    return buf.find(b"\ndata", start, end) >= 0 or buf.startswith(b"data", start)


def _last_field(buf: bytearray, name: bytes, start: int, end: int) -> bytes | None:
    """The value of the last ``name:`` line (or bare ``name`` line) of ``buf[start:end]``,
    whose lines end in ``\\n`` (one space after the colon dropped), or None."""
    key = b"\n" + name
    k = len(key)
    at = buf.rfind(key, start, end)
    while at >= 0 and buf[at + k] not in (58, 10):  # "identity: ..." is not "id"
        at = buf.rfind(key, start, at)
    if at < 0:
        if not buf.startswith(name, start) or buf[start + k - 1] not in (58, 10):
            return None
        at = start - 1
    value_at = at + k
    eol = buf.find(b"\n", value_at, end)
    value = bytes(buf[value_at:eol])
    if value.startswith(b":"):
        value = value[1:]
        if value.startswith(b" "):
            value = value[1:]
    return value
