"""What redis and memcached share in their declarations: the look of each one's replies (for
the diagnosis), the ``--keys`` option, and the guess when nothing valid came back."""

from __future__ import annotations

import re

from harness.core.settings import Setting, int_range

RESP = re.compile(rb"^(?:[-+][A-Za-z]{2,}|[:$*]-?\d+\r\n)")  # -ERR .., +OK, :1, $5, *2
MEMCACHED = re.compile(rb"^(?:ERROR|CLIENT_ERROR |SERVER_ERROR |STORED|NOT_STORED|END|VALUE )")
KEYS = Setting("--keys", "Load", "redis/memcached: keys key:1 to key:N (1 to 10^9)",
               int_range(1, 10**9), 1000,
               applies=(frozenset({"redis", "memcached"}), "--workload redis and memcached"))


def kv_guess(kv: str, raw: bytes, hung_up: int) -> str:
    """What the bytes that came back to redis or memcached requests suggest."""
    if not raw:
        return (f"the target hung up without a reply: is it a {kv} server?" if hung_up else
                f"the target took the requests and never answered: is it a {kv} server?")
    if raw.startswith(b"HTTP/") or raw.lstrip()[:9].lower() in (b"<!doctype", b"<html>"):
        return "the target answered with HTTP"
    if kv != "redis" and RESP.match(raw):
        return "the target answered in RESP (the Redis protocol): try --workload redis"
    if kv != "memcached" and MEMCACHED.match(raw):
        return "the target answered in memcached's text protocol: try --workload memcached"
    return f"the replies are not in {kv}'s protocol: is it a {kv} server?"
