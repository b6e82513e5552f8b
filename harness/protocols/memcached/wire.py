"""memcached's part in a worker's step: text-protocol replies
(harness.protocols.memcached.memcache)."""

from __future__ import annotations

from harness.protocols.kvwire import KvWire
from harness.protocols.memcached.memcache import Memcache


class MemcachedWire(KvWire):
    replies = Memcache


WIRE = MemcachedWire
