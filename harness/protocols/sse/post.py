"""The senders' side of an SSE run, sans-I/O: each message is one HTTP/1.1 ``POST`` whose
JSON body carries the stamp in a field (the body template of
harness.protocols.ws.wstemplate, as ``--ws-text`` writes its messages), and the responses to
those POSTs, read in order off each sender's keep-alive connection.

A round's requests are one (messages, size) numpy array: head and body written once, the
stamp columns per round. Responses are counted by status (a 2xx is fine); a read that is
copies of the last response seen is that many responses (no parse).

Sizes are bytes.
"""

from __future__ import annotations

import numpy as np

from harness.protocols.ws.wstemplate import StampedRows, TextTemplate

MAX_HEAD = 16 * 1024  # most bytes of a response head


class ResponseError(ValueError):
    """A response that is not HTTP/1.1 (the POST connection breaks)."""


class PostRequests:
    """The bytes of a round's POSTs (``path`` on ``host``), stamped."""

    def __init__(self, host: str, path: str, template: TextTemplate, worker: int,
                 key: int) -> None:
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {template.size}\r\n\r\n").encode()
        row = np.concatenate((np.frombuffer(head, dtype=np.uint8), template.row))
        self.stamped = StampedRows(row, len(head) + template.col, worker, key)
        self.size = len(row)  # one POST's bytes

    def build(self, gid: np.ndarray, seq0: int, tint: np.ndarray | int,
              delay: np.ndarray | int) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """The round's requests (``gid``: the sender of each): bytes, each one's end, kinds."""
        rows, ends, kinds = self.stamped.stamped(gid, seq0, tint, delay)
        return rows.data.cast("B"), ends, kinds


class Responses:
    """HTTP/1.1 responses read off one connection: whole ones counted by status, a partial
    one kept for the next read."""

    def __init__(self) -> None:
        self.pending = b""
        self.last = b""  # the last whole response (a read of copies of it needs no parse)

    def feed(self, data: bytes) -> list[int]:
        """The statuses of the whole responses that ``data`` completes (raises
        ResponseError when the bytes are not HTTP/1.1 responses)."""
        last = self.last
        if not self.pending and last and len(data) % len(last) == 0 \
                and data == last * (len(data) // len(last)):
            return [int(last[9:12])] * (len(data) // len(last))
        buf = self.pending + data
        out: list[int] = []
        pos = 0
        while True:
            got = _response(buf, pos)
            if got is None:
                break
            status, end = got
            out.append(status)
            self.last = buf[pos:end]
            pos = end
        self.pending = buf[pos:]
        if len(self.pending) > MAX_HEAD and self.pending.find(b"\r\n\r\n") < 0:
            raise ResponseError("a response head over 16 KiB")
        return out


def _response(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(status, end) of the whole response at ``pos``, or None when it is not whole yet."""
    head_end = buf.find(b"\r\n\r\n", pos)
    if head_end < 0:
        if len(buf) - pos >= 12 and not buf.startswith(b"HTTP/1.", pos):
            raise ResponseError("the POST's response is not HTTP/1.x")
        return None
    head = buf[pos:head_end].lower()
    status_text = head[9:12]
    if not head.startswith(b"http/1.") or not status_text.isdigit():
        raise ResponseError("the POST's response is not HTTP/1.x")
    body_at = head_end + 4
    if b"transfer-encoding: chunked" in head:
        end = buf.find(b"0\r\n\r\n", body_at)
        return (int(status_text), end + 5) if end >= 0 else None
    length = _content_length(head)
    if len(buf) < body_at + length:
        return None
    return int(status_text), body_at + length


def _content_length(head: bytes) -> int:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    value = head[at + 17:head.find(b"\r\n", at + 2) if head.find(b"\r\n", at + 2) > 0
                 else len(head)].strip()
    if not value.isdigit():
        raise ResponseError("a bad Content-Length in the POST's response")
    return int(value)
