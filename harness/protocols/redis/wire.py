"""redis's part in a worker's step: RESP replies (harness.protocols.redis.resp)."""

from __future__ import annotations

from harness.protocols.kvwire import KvWire
from harness.protocols.redis.resp import Resp


class RedisWire(KvWire):
    replies = Resp


WIRE = RedisWire
