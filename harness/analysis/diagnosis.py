"""A run where not a single valid reply came back: one line saying what was sent, what came
back (the first bytes that did not parse, escaped as printable ASCII) and a guess at why
(HTTP, RESP, a framing mismatch, a server that hangs up or never answers). A raw-TCP run
that did get valid replies but also an HTTP answer gets a one-line warning."""

from __future__ import annotations

from harness import protocols


def escape_bytes(data: bytes) -> str:
    r"""Bytes as printable ASCII, escaped like a Python literal (b"\x00\r\n" -> "\x00\r\n");
    ``unescape_bytes`` reverses it."""
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


def unescape_bytes(text: str) -> bytes:
    return text.encode("ascii").decode("unicode_escape").encode("latin-1")


def no_reply_diagnosis(steps: list[dict], framing: str, http_url: str | None = None,
                       kv: str | None = None, speaks: str = "", ca: bool = False
                       ) -> str | None:
    """One line when not a single valid reply arrived in the whole run (any step, warm-up
    and drain included): what was sent, what came back, the first bytes that did not
    parse, and a guess at why (``http_url``: the URL to suggest when the target answered
    a raw-TCP run with HTTP; ``kv``: "redis" or "memcached" when the run sent that
    protocol's requests, not stamped frames; ``speaks``: the run's protocol ("http",
    "ws", "sio", ...: its guess, and its error kinds among the failed connects), "" for raw
    TCP; ``ca``: --ca was given). None when some valid reply came."""
    if not steps or any(s.get("replies", s["received"]) for s in steps):
        return None
    tls = tls_diagnosis(steps, ca)
    if tls:
        return tls
    sent = sum(s.get("sent_all", s["sent"]) for s in steps)
    errs = {k: sum(s["errors"].get(k, 0) for s in steps) for k in steps[0]["errors"]}
    if not sent:
        return never_open(steps, errs, speaks)
    conns = max(s.get("connected", s["conns"]) for s in steps)
    raw_text = next((s["first_unparsed"] for s in steps if s.get("first_unparsed")), "")
    raw = unescape_bytes(raw_text)
    back = [f"{errs[k]} {name}" for k, name in (
        ("protocol", "replies that did not parse"), ("closed", "connections closed by it"),
        ("reset", "connections reset"), ("timeout", "reply timeouts")) if errs.get(k)]
    got = ", ".join(back) if back else "nothing"
    first = f'; first bytes received: "{raw_text}"' if raw else "; no bytes came back"
    hung_up = errs.get("closed", 0) + errs.get("reset", 0)
    proto = protocols.by_name(kv or speaks or "tcp")  # what it sent, why nothing came back
    what = proto.what.format(framing=framing)
    why = proto.guess(raw, framing, hung_up, http_url)
    return (f"no valid reply in the whole run: sent {sent} {what} on "
            f"{conns} connections; got back {got}{first}; {why}")


def never_open(steps: list[dict], errs: dict[str, int], speaks: str) -> str:
    """Nothing was sent: no connection opened (or finished its WebSocket handshake)."""
    conns = max(s["conns"] for s in steps)
    own = protocols.by_name(speaks).error_prefixes if speaks else ()  # (its handshake's)
    fails = sorted(((n, k) for k, n in errs.items()
                    if n and (k.startswith("connect") or k.startswith(own))), reverse=True)
    how = ", ".join(f"{n} {k}" for n, k in fails) or "no connect error counted"
    if speaks == "ws":
        return (f"no valid reply in the whole run: no message was sent: none of the {conns} "
                f"connections finished its WebSocket handshake ({how}): does the target "
                "answer the upgrade request at this path?")
    hint = ""  # a protocol over WebSocket whose upgrade was refused: its own guess why
    if speaks and any(k.startswith("connect_ws_") for _, k in fails):
        hint = ": " + protocols.by_name(speaks).guess(b"HTTP/", "", 0)
    return (f"no valid reply in the whole run: no message was sent: none of the {conns} "
            f"connections opened ({how}){hint}")


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


def tls_hint(kind: str, why: str, ca: bool) -> str:
    """What to do after a TLS failure of ``kind`` for reason ``why`` (``ca``: --ca was
    given, so "use --ca" is no advice)."""
    if kind == "tls_cert" and "expired" in why:
        return "the target's certificate has expired: renew it (or --insecure)"
    if kind == "tls_cert" and "not yet valid" in why:
        return "the target's certificate is not valid yet: check the clocks (or --insecure)"
    if kind == "tls_cert" and "hostname" in why.lower():
        return "the certificate is for another name: use the name it was issued for"
    if kind == "tls_cert" and ca:
        return "the certificate does not verify against --ca FILE: is that the CA that " \
               "signed it? (or --insecure)"
    return TLS_HINTS.get(kind, "see the errors")


def tls_diagnosis(steps: list[dict], ca: bool = False) -> str | None:
    """One line when TLS failures ended the connections of a run without a valid reply: the
    most frequent tls_* kind, its first reason, and what to do (``ca``: --ca was given).
    None when no TLS failure."""
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
            f"connections); {tls_hint(kind, why, ca)}")
