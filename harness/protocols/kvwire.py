"""redis's and memcached's part in a worker's step: requests from the plan's pools (rendered
at plan time), replies in order; error replies and misses counted by kind after each round."""

from __future__ import annotations

from typing import Any

from harness.protocols.replies import OK, Replies
from harness.protocols.wire import Wire
from harness.wire.inbound import Parsed
from harness.wire.protocol import Stamped


class KvWire(Wire):
    replies: type[Replies] = Replies  # the protocol object's class (Resp, Memcache)

    def __init__(self, w: Any) -> None:
        super().__init__(w)
        self.after_round = self.counted

    def protocol(self, key: int) -> Stamped:
        w = self.w
        return self.replies([r.pool for r in w.plan.requests], w.framing, w.out,
                            w.plan.max_frame, key, len(w.share.node), w.index)

    def early_request(self) -> bytes | None:
        single: bytes | None = self.w.proto.single
        return single

    def few_code(self, n: int) -> int | None:
        """Every reply of the round ok (no miss, no error reply to count): OK."""
        codes = self.w.proto.round_codes
        return OK if len(codes) == n and codes.count(OK) == n else None

    def book_few(self, code: int, n: int) -> None:
        self.w.proto.round_codes.clear()

    def counted(self, p: Parsed, now: int) -> None:
        """Misses and error replies, by kind (``redis_miss``, ``mc_ERROR``)."""
        rec = self.w.rec
        if rec.measuring:
            for kind, count in self.w.proto.counted(p.ok):
                rec.error(kind, count, now)
