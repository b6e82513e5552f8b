"""HTTP/1.1 keep-alive (the http workload): ``http://`` and ``https://`` targets (port 80 or
443 unless given), requests from the workload or a ``[[requests]]`` table, responses matched
in order and counted by status (``http_404`` unless ``--accept`` takes it). A server's
keep-alive close between requests is a reconnect, not an error. No built-in target."""

from __future__ import annotations

from harness.core.settings import STR, Setting
from harness.protocols.kvguess import MEMCACHED, RESP
from harness.protocols.spec import Spec

SETTINGS = (
    Setting("--accept", "Load", "HTTP: status codes that are not errors, e.g. 2xx,3xx,404 "
            "or 200-299 (default 2xx)", STR, "2xx",
            applies=(frozenset({"http"}), "http:// and https:// targets")),
    Setting("--requests", "Load", "HTTP: a TOML file whose [[requests]] table replaces "
            "harness.toml's", STR, ""),
)


def guess(raw: bytes, framing: str = "", hung_up: int = 0, http_url: str | None = None) -> str:
    """What the bytes that came back to HTTP requests suggest."""
    if not raw:
        return ("the target hung up without a response: is it an HTTP/1.1 server?" if hung_up
                else "the target took the requests and never answered: is it an HTTP/1.1 "
                "server?")
    if raw.startswith(b"HTTP/"):
        return "the responses did not parse as HTTP/1.1 (see the first bytes)"
    if RESP.match(raw):
        return "the target answered in RESP (the Redis protocol): try --workload redis"
    if MEMCACHED.match(raw):
        return "the target answered in memcached's text protocol: try --workload memcached"
    return "the replies are not HTTP/1.1: is it an HTTP server?"


SPEC = Spec("http", "http", "harness.protocols.http.wire:WIRE", guess, "HTTP requests",
            schemes={"http": 80, "https": 443}, tls_schemes=("https",), settings=SETTINGS,
            sort="http", applies_to="http:// and https:// targets",
            error_prefixes=("http_", "tls_", "check_", "capture_"),
            failed_replies=("http_", "check_", "capture_"))
