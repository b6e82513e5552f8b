"""A run where not a single valid reply came back: one line saying what was sent, what came
back (the first bytes that did not parse, escaped as printable ASCII) and a guess at why
(HTTP, RESP, a framing mismatch, a server that hangs up or never answers). A raw-TCP run
that did get valid replies but also an HTTP answer gets a one-line warning."""

from __future__ import annotations

import re


def escape_bytes(data: bytes) -> str:
    r"""Bytes as printable ASCII, escaped like a Python literal (b"\x00\r\n" -> "\x00\r\n");
    ``unescape_bytes`` reverses it."""
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


def unescape_bytes(text: str) -> bytes:
    return text.encode("ascii").decode("unicode_escape").encode("latin-1")


def no_reply_diagnosis(steps: list[dict], framing: str, http_url: str | None = None
                       ) -> str | None:
    """One line when not a single valid reply arrived in the whole run (any step, warm-up
    and drain included): what was sent, what came back, the first bytes that did not
    parse, and a guess at why (``http_url``: the URL to suggest when the target answered
    a raw-TCP run with HTTP). None when some valid reply came."""
    if not steps or any(s.get("replies", s["received"]) for s in steps):
        return None
    tls = tls_diagnosis(steps)
    if tls:
        return tls
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
    return (f"no valid reply in the whole run: sent {sent} stamped {framing} messages on "
            f"{conns} connections; got back {got}{first}; "
            f"{guess(raw, framing, errs.get('closed', 0) + errs.get('reset', 0), http_url)}")


def http_answer_warning(steps: list[dict], http_url: str) -> str | None:
    """One line when a raw-TCP run got valid replies but also bytes that start like an HTTP
    response (``HTTP/1.``): some target is an HTTP server. None otherwise."""
    raw = unescape_bytes(next((s["first_unparsed"] for s in steps if s.get("first_unparsed")),
                              ""))
    if not raw.startswith(b"HTTP/1."):
        return None
    return (f'some replies were HTTP (first bytes: "{escape_bytes(raw[:32])}"): the target '
            f"answered with HTTP: use --host {http_url}")


def http_url(targets: list[tuple[str, int]]) -> str:
    """The ``--host`` URL to suggest for raw-TCP ``targets`` (host, port): the target's own
    when there is one, else a pattern."""
    if len(targets) != 1:
        return "http://HOST:PORT/"
    host, port = targets[0]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


TLS_HINTS = {  # the advice after a TLS failure's reason, by kind
    "tls_cert": "use --ca FILE (the CA that signed it) or --insecure",
    "tls_handshake": "does the target speak TLS on this port, and a version harness offers?",
    "tls_eof": "the target closed the connection mid-handshake: does it speak TLS on this "
               "port?",
    "tls_timeout": "the target never answered the handshake: does it speak TLS on this port?",
    "tls_error": "TLS broke after the handshake",
}


def tls_diagnosis(steps: list[dict]) -> str | None:
    """One line when TLS failures ended the connections of a run without a valid reply: the
    most frequent tls_* kind, its first reason, and what to do. None when no TLS failure."""
    counts: dict[str, int] = {}
    for s in steps:
        for k, n in s["errors"].items():
            if k.startswith("tls_") and n:
                counts[k] = counts.get(k, 0) + n
    if not counts:
        return None
    kind = max(counts, key=lambda k: counts[k])
    why = next((s["tls_reasons"][kind] for s in steps if kind in (s.get("tls_reasons") or {})),
               "no handshake within --connect-timeout" if kind == "tls_timeout" else kind)
    conns = sum(s["conns"] for s in steps)
    return (f"no valid reply: TLS failed: {why} ({kind} on {counts[kind]} of {conns} "
            f"connections); {TLS_HINTS.get(kind, 'see the errors')}")


RESP = re.compile(rb"^(?:[-+][A-Za-z]{2,}|[:$*]-?\d+\r\n)")  # -ERR .., +OK, :1, $5, *2


def guess(raw: bytes, framing: str, hung_up: int = 0, http_url: str | None = None) -> str:
    """What the bytes that came back (and ``hung_up`` connections closed or reset by the
    target) suggest; ``http_url``: the URL to suggest if they are HTTP."""
    if not raw and hung_up:
        return (f"the target hung up without a reply: does it expect {framing} frames "
                "(--framing)?")
    if not raw:
        return ("the target took the messages and never answered: is it an echo server, "
                "and does it expect this framing?")
    if raw.startswith(b"HTTP/") or raw.lstrip()[:9].lower() in (b"<!doctype", b"<html>"):
        # (an HTTP/0.9 error is a bare HTML page)
        return "the target answered with HTTP" + (f": use --host {http_url}" if http_url
                                                  else "")
    if RESP.match(raw):
        return "the target answered in RESP (the Redis protocol): it is not an echo server"
    if framing != "newline" and (raw.endswith(b"\n") or b"\n" in raw and _mostly_text(raw)):
        return "framing mismatch: the replies look like newline frames (try --framing newline)"
    if framing == "newline" and len(raw) >= 4 and not _mostly_text(raw[:16]):
        return ("framing mismatch: the replies look binary, not newline frames (try "
                "--framing len32 or len16)")
    return "replies carry no stamp: is it an echo server?"


def _mostly_text(b: bytes) -> bool:
    printable = sum(32 <= c < 127 or c in (9, 13) for c in b)
    return len(b) > 0 and printable >= 0.9 * len(b)
