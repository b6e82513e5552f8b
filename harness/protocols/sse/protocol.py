"""The sans-I/O protocol object of an SSE run: a receiver's bytes are its event stream
(harness.protocols.sse.stream decodes each read in place and keeps whole events; a broken
chunk or an event over max-frame breaks the stream), a round's events become deliveries
matched by stamp (harness.protocols.sse.events), and a round's messages are stamped POSTs
(harness.protocols.sse.post)."""

from __future__ import annotations

import numpy as np

from harness.protocols.sse.events import parse_round
from harness.protocols.sse.post import PostRequests
from harness.protocols.sse.stream import StreamError, Streams
from harness.wire.batch import Outbound
from harness.wire.framing import Framing
from harness.wire.inbound import Parsed
from harness.wire.protocol import Stamped


class SseProtocol(Stamped):
    """Event streams in, stamped POSTs out, deliveries matched by stamp."""

    def __init__(self, framing: Framing, out: Outbound, max_frame: int, key: int, n: int,
                 requests: PostRequests, event: str = "message") -> None:
        super().__init__(framing, out, None, max_frame, key)
        self.fixed = None  # every read is decoded and cut at its last blank line
        self.walks = False  # (events are found by parse, over the whole round)
        self.key = key
        self.streams = Streams(n, max_frame)
        self.requests = requests
        self.event = event.encode()

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: list[int] | None,
            broken: list[int]) -> tuple[int, int]:
        try:
            cut, end, ok = self.streams.cut(buf, i, start, end)
        except StreamError:
            broken.append(i)
            return start, start
        if not ok:
            broken.append(i)
        return cut, end

    def parse(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
              seg_t: list[int], walk: list[int] | None) -> Parsed:
        return parse_round(buf, seg_conn, seg_end, seg_t, self.key, self.event)

    def build(self, gid: np.ndarray, idx: np.ndarray, counts: np.ndarray, seq0: int,
              tint: np.ndarray | int, delay: np.ndarray | int
              ) -> tuple[memoryview, np.ndarray, np.ndarray]:
        return self.requests.build(gid, seq0, tint, delay)
