"""memcached (the memcached workload): text-protocol requests rendered at plan time
(harness.protocols.kvcmds), pipelined, replies matched in order
(harness.protocols.memcached.memcache); failures counted by kind (``mc_ERROR``), misses as
``mc_miss`` (information, not a failure). Selected by ``--workload memcached`` with a
``host:port`` target (no URL scheme). No built-in target."""

from __future__ import annotations

from harness.core.settings import STR, Setting
from harness.protocols.kvguess import KEYS, MEMCACHED, kv_guess
from harness.protocols.spec import Spec

__all__ = ["MEMCACHED", "SPEC"]

SETTINGS = (
    Setting("--mc-cmd", "Load", "memcached: set, get, or weighted: set:1,get:9", STR,
            "set", applies=(frozenset({"memcached"}), "--workload memcached")),
    KEYS,
)


def guess(raw: bytes, framing: str = "", hung_up: int = 0, http_url: str | None = None) -> str:
    return kv_guess("memcached", raw, hung_up)


SPEC = Spec("memcached", "memcache", "harness.protocols.memcached.wire:WIRE", guess,
            "memcached requests", settings=SETTINGS, sort="memcached",
            applies_to="--workload memcached", error_prefixes=("mc_",),
            failed_replies=("mc_",))
