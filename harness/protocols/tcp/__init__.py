"""Raw TCP: stamped frames in the run's framing (newline, len16, len32, ...), echoed back or
broadcast (the echo and chat workloads). Targets are ``host:port``; ``--tls`` wraps them in
TLS. Its built-in target is the embedded echo or chat server (harness.targets)."""

from __future__ import annotations

from harness.protocols.kvguess import RESP
from harness.protocols.spec import Spec


def looks_like_http(raw: bytes) -> bool:
    """Bytes that start an HTTP response (an HTTP/0.9 error is a bare HTML page)."""
    return raw.startswith(b"HTTP/") or raw.lstrip()[:9].lower() in (b"<!doctype", b"<html>")


def guess(raw: bytes, framing: str, hung_up: int = 0, http_url: str | None = None) -> str:
    """What the bytes that came back (and ``hung_up`` connections closed or reset by the
    target) suggest; ``http_url``: the URL to suggest if they are HTTP."""
    if not raw and hung_up:
        return (f"the target hung up without a reply: does it expect {framing} frames "
                "(--framing)?")
    if not raw:
        return ("the target took the messages and never answered: is it an echo server, "
                "and does it expect this framing?")
    if looks_like_http(raw):
        return "the target answered with HTTP" + (f": use --host {http_url}" if http_url
                                                  else "")
    if RESP.match(raw):
        return "the target answered in RESP (the Redis protocol): it is not an echo server"
    if framing != "newline" and (raw.endswith(b"\n") or b"\n" in raw and mostly_text(raw)):
        return "framing mismatch: the replies look like newline frames (try --framing newline)"
    if framing == "newline" and len(raw) >= 4 and not mostly_text(raw[:16]):
        return ("framing mismatch: the replies look binary, not newline frames (try "
                "--framing len32 or len16)")
    return "replies carry no stamp: is it an echo server?"


def mostly_text(b: bytes) -> bool:
    printable = sum(32 <= c < 127 or c in (9, 13) for c in b)
    return len(b) > 0 and printable >= 0.9 * len(b)


SPEC = Spec("tcp", "framed", "harness.protocols.tcp.wire:WIRE", guess,
            "stamped {framing} messages",
            sort="tcp", error_prefixes=("tls_",),
            target="harness.targets.echo")
