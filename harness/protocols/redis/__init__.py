"""redis (the redis workload): RESP requests rendered at plan time (harness.protocols.kvcmds),
pipelined, replies matched in order (harness.protocols.redis.resp); error replies counted by
kind (``redis_ERR``), nil replies as ``redis_miss`` (information, not a failure). Selected by
``--workload redis`` or a ``redis://host[:port]`` target (port 6379). No built-in target."""

from __future__ import annotations

from harness.core.settings import STR, Setting
from harness.protocols.kvguess import KEYS, RESP, kv_guess
from harness.protocols.spec import Spec

__all__ = ["RESP", "SPEC"]

SETTINGS = (
    Setting("--redis-cmd", "Load", "redis: ping, echo, set, get, or weighted: set:1,get:3",
            STR, "ping", applies=(frozenset({"redis"}), "--workload redis")),
    KEYS,
)


def guess(raw: bytes, framing: str = "", hung_up: int = 0, http_url: str | None = None) -> str:
    return kv_guess("redis", raw, hung_up)


SPEC = Spec("redis", "resp", "harness.protocols.redis.wire:WIRE", guess, "redis requests",
            schemes={"redis": 6379}, settings=SETTINGS, sort="redis",
            applies_to="--workload redis", error_prefixes=("redis_",),
            failed_replies=("redis_",))
