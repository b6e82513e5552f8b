"""Text WebSocket messages: a JSON template with the stamp in a string field, and a rule
that tells messages from other frames (presence, acks, welcome).

* :class:`harness.protocols.ws.wstemplate.TextTemplate` (in its own module, without
  sockets, so config checks a template without importing this one): the JSON text with
  ``{stamp}`` and ``{text}``. A round's messages are one (messages, size) numpy array: the
  template written once, the stamp columns per round.
* :class:`TextProtocol`: WebSocket frames as
  :class:`harness.protocols.ws.wsproto.WsProtocol` cuts them;
  each message parsed with orjson (so a server may re-serialise the JSON: spacing and key
  order do not matter), skipped when the rule (``field=value``) does not hold, else its
  ``stamp`` field decoded (all of a round's stamps in one numpy call). A message that is not
  JSON, or has no valid stamp, is a protocol error.

Sizes are bytes.
"""

from __future__ import annotations

import numpy as np
import orjson

from harness.protocols.ws.wsframe import OP_TEXT
from harness.protocols.ws.wsproto import WsProtocol
from harness.protocols.ws.wstemplate import STAMP_FIELD, StampedRows, TextTemplate
from harness.wire import stamp
from harness.wire.batch import Outbound
from harness.wire.framing import Framing
from harness.wire.inbound import Parsed


class TextProtocol(WsProtocol):
    """Stamped JSON text messages over WebSocket, matched by stamp."""

    def __init__(self, framing: Framing, out: Outbound, max_frame: int, key: int,
                 worker: int, template: TextTemplate, match: tuple[str, str] | None,
                 n: int = 0, deflate: bool = False) -> None:
        super().__init__(framing, out, None, max_frame, key, n, deflate)
        self.key = key
        self.worker = worker
        self.template = template
        self.match = match
        self.stamped = StampedRows(template.row, template.col, worker, key)

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        rows, ends, kinds = self.stamped.stamped(gid, seq0, tint, delay)
        return (*self.frame(rows.data.cast("B"), ends, idx, counts, OP_TEXT), kinds)

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        buf, seg_end, walk, broke = self.inflated(buf, seg_conn, seg_end, walk)
        assert walk is not None
        total = seg_end[-1]
        starts = np.asarray(walk, dtype=np.int64)
        ends = np.append(starts[1:], total)
        keep, raw = self._stamps(buf, starts.tolist(), ends.tolist())
        starts, ends = starts[keep], ends[keep]
        seg = np.searchsorted(np.asarray(seg_end, dtype=np.int64), starts, side="right")
        conn = np.asarray(seg_conn, dtype=np.int64)[seg]
        t = np.asarray(seg_t, dtype=np.int64)[seg]
        st, ok = stamp.from_bytes(raw, True, self.key)  # zeros (no stamp field) fail it
        return Parsed(conn, t, st, ok, ends - starts, broke)

    def _stamps(self, buf: bytearray, starts: list[int], ends: list[int]
                ) -> tuple[np.ndarray, np.ndarray]:
        """Which messages count (the rule), and each one's stamp digits (zeros: none)."""
        keep = np.ones(len(starts), dtype=bool)
        raw = np.zeros((len(starts), stamp.ASCII_SIZE), dtype=np.uint8)
        mv = memoryview(buf)
        match = self.match
        for j, (a, b) in enumerate(zip(starts, ends, strict=True)):
            try:
                doc = orjson.loads(mv[a:b])
            except orjson.JSONDecodeError:
                continue
            if not isinstance(doc, dict):
                continue
            if match is not None and str(doc.get(match[0])) != match[1]:
                keep[j] = False
                continue
            s = doc.get(STAMP_FIELD)
            if isinstance(s, str) and len(s) == stamp.ASCII_SIZE and s.isascii():
                raw[j] = np.frombuffer(s.encode(), dtype=np.uint8)
        return keep, raw[keep]
