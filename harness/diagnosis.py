"""A run where not a single valid reply came back: one line saying what was sent, what came
back (the first bytes that did not parse, escaped as printable ASCII) and a guess at why
(HTTP, RESP, a framing mismatch, a server that hangs up or never answers)."""

from __future__ import annotations

import re


def escape_bytes(data: bytes) -> str:
    r"""Bytes as printable ASCII, escaped like a Python literal (b"\x00\r\n" -> "\x00\r\n");
    ``unescape_bytes`` reverses it."""
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


def unescape_bytes(text: str) -> bytes:
    return text.encode("ascii").decode("unicode_escape").encode("latin-1")


def no_reply_diagnosis(steps: list[dict], framing: str, kv: str | None = None) -> str | None:
    """One line when not a single valid reply arrived in the whole run (any step, warm-up
    and drain included): what was sent, what came back, the first bytes that did not
    parse, and a guess at why. None when some valid reply came. ``kv``: "redis" or
    "memcached" when the run sent that protocol's requests, not stamped frames."""
    if not steps or any(s.get("replies", s["received"]) for s in steps):
        return None
    sent = sum(s.get("sent_all", s["sent"]) for s in steps)
    conns = max(s.get("connected", s["conns"]) for s in steps)
    errs = {k: sum(s["errors"].get(k, 0) for s in steps) for k in steps[0]["errors"]}
    raw_text = next((s["first_unparsed"] for s in steps if s.get("first_unparsed")), "")
    raw = unescape_bytes(raw_text)
    back = [f"{errs[k]} {name}" for k, name in (
        ("protocol", "replies that did not parse"), ("closed", "connections closed by it"),
        ("reset", "connections reset"), ("timeout", "reply timeouts")) if errs.get(k)]
    got = ", ".join(back) if back else "nothing"
    first = f'; first bytes received: "{raw_text}"' if raw else "; no bytes came back"
    hung_up = errs.get("closed", 0) + errs.get("reset", 0)
    what = f"{kv} requests" if kv else f"stamped {framing} messages"
    why = kv_guess(raw, kv, hung_up) if kv else guess(raw, framing, hung_up)
    return (f"no valid reply in the whole run: sent {sent} {what} on "
            f"{conns} connections; got back {got}{first}; {why}")


RESP = re.compile(rb"^(?:[-+][A-Za-z]{2,}|[:$*]-?\d+\r\n)")  # -ERR .., +OK, :1, $5, *2


def guess(raw: bytes, framing: str, hung_up: int = 0) -> str:
    """What the bytes that came back (and ``hung_up`` connections closed or reset by the
    target) suggest."""
    if not raw and hung_up:
        return (f"the target hung up without a reply: does it expect {framing} frames "
                "(--framing)?")
    if not raw:
        return ("the target took the messages and never answered: is it an echo server, "
                "and does it expect this framing?")
    if raw.startswith(b"HTTP/") or raw.lstrip()[:9].lower() in (b"<!doctype", b"<html>"):
        return "the target answered with HTTP"  # (an HTTP/0.9 error is a bare HTML page)
    if RESP.match(raw):
        return "the target answered in RESP (the Redis protocol): it is not an echo server"
    if framing != "newline" and (raw.endswith(b"\n") or b"\n" in raw and _mostly_text(raw)):
        return "framing mismatch: the replies look like newline frames (try --framing newline)"
    if framing == "newline" and len(raw) >= 4 and not _mostly_text(raw[:16]):
        return ("framing mismatch: the replies look binary, not newline frames (try "
                "--framing len32 or len16)")
    return "replies carry no stamp: is it an echo server?"


MEMCACHED = re.compile(rb"^(?:ERROR|CLIENT_ERROR |SERVER_ERROR |STORED|NOT_STORED|END|VALUE )")


def kv_guess(raw: bytes, kv: str, hung_up: int = 0) -> str:
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


def _mostly_text(b: bytes) -> bool:
    printable = sum(32 <= c < 127 or c in (9, 13) for c in b)
    return len(b) > 0 and printable >= 0.9 * len(b)
