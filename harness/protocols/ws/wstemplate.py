"""The JSON template of a text WebSocket message: ``{stamp}`` (56 hex digits, the ASCII
stamp) and optionally ``{text}`` (filler up to ``--size`` bytes) inside a JSON text, e.g.
``{"type": "message", "stamp": "{stamp}", "text": "{text}"}``, checked and laid out once.

No sockets: config checks a ``--ws-text`` template with it, and
:class:`harness.protocols.ws.wstext.TextProtocol` writes a round's messages from it. Sizes
are bytes.
"""

from __future__ import annotations

import numpy as np
import orjson

from harness.wire import stamp

STAMP_FIELD = "stamp"


class TemplateError(ValueError):
    """A template that cannot carry the stamp (the message says why)."""


class TextTemplate:
    """The bytes of one message of ``size`` bytes and where its stamp goes."""

    def __init__(self, template: str, size: int) -> None:
        if template.count("{stamp}") != 1:
            raise TemplateError("needs {stamp} exactly once (inside a JSON string)")
        pre, post = template.split("{stamp}")
        fill_at = post.find("{text}")
        overhead = len((pre + post.replace("{text}", "")).encode()) + stamp.ASCII_SIZE
        fill = max(size - overhead, 0) if fill_at >= 0 else 0
        body = pre + "0" * stamp.ASCII_SIZE + post.replace("{text}", "x" * fill)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise TemplateError(f"not JSON once filled in ({exc})") from None
        if not isinstance(doc, dict) or doc.get(STAMP_FIELD) != "0" * stamp.ASCII_SIZE:
            raise TemplateError(f'needs "{STAMP_FIELD}": "{{stamp}}" in a JSON object')
        self.row = np.frombuffer(body.encode(), dtype=np.uint8)
        self.col = len(pre.encode())
        self.size = len(self.row)
        self.overhead = overhead


class StampedRows:
    """A round's messages from one laid-out message (``row``, its stamp at ``col``): a
    (messages, size) array grown as needed, the message written into it once, only the
    stamp columns per round. WebSocket text, Socket.IO emits and SSE POSTs build from it."""

    def __init__(self, row: np.ndarray, col: int, worker: int, key: int) -> None:
        self.row, self.col, self.size = row, col, len(row)
        self.worker, self.key = worker, key
        self.rows = np.empty((0, self.size), dtype=np.uint8)

    def stamped(self, gid: np.ndarray, seq0: int, tint: np.ndarray | int,
                delay: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The round's ``len(gid)`` messages (``gid``: each one's sender; seqs from
        ``seq0``), stamped: the rows, each one's end in their bytes, their kinds (0)."""
        n = len(gid)
        if n > len(self.rows):
            self.rows = np.empty((max(n, 2 * len(self.rows)), self.size), dtype=np.uint8)
            self.rows[:] = self.row
        kinds = np.zeros(n, dtype=np.uint16)
        st = stamp.make(gid, np.arange(seq0, seq0 + n, dtype=np.uint32), kinds, self.worker,
                        delay, tint, self.key)
        rows = self.rows[:n]
        rows[:, self.col:self.col + stamp.ASCII_SIZE] = stamp.to_bytes(st, True)
        ends = np.arange(self.size, (n + 1) * self.size, self.size, dtype=np.int64)
        return rows, ends, kinds
