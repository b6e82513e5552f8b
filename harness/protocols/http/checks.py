"""Captures and checks of an HTTP response, sans-I/O: what a ``[[users.requests]]`` entry's
``capture`` and ``check`` tables say (parsed at plan time, :func:`parse_capture`,
:func:`parse_check`), and what a response gives them (:func:`read_response`,
:meth:`Capture.take`, :meth:`Check.fails`). Plain bytes in, values out: no sockets.

A capture is a string: ``"$.a.b"``, ``"$.items[0].id"`` or ``'$["a"]'`` (a JSON path into
the body), ``"header:Location"`` (a header's value, the last one of that name) or
``"re:id=(\\d+)"`` (a regular expression over the body: its first group, else the whole
match). A JSON string is captured as its text, any other JSON value as its JSON text.

A check is a table: ``status = "200,201"`` (the status set of :func:`parse_accept`),
``json = { "$.ok" = true }`` (the value equals; a string ``"re:PATTERN"`` matches it),
``contains``, ``not_contains`` (strings the body must, or must not, hold), ``max_bytes``
(the most bytes of the body) and ``name`` (the error kind is ``check_<name>``; default the
request's name). Sizes are bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_CAPTURED = 4096  # bytes of the longest value a capture keeps (longer: not found)
CHECK_KEYS = {"status", "json", "contains", "not_contains", "max_bytes", "name"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHECK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]{1,9})\]|\[\"([^\"\\]*)\"\]")
_MISSING = object()


class SpecError(ValueError):
    """A capture or check that cannot be read: the message says why (config adds where)."""


def parse_path(text: str) -> tuple[str | int, ...]:
    """A JSON path of the subset: ``$`` then ``.name``, ``[N]`` and ``["name"]`` steps.
    Refused: wildcards, ``..``, filters, slices, negative indices, quotes other than ``"``."""
    if not text.startswith("$"):
        raise SpecError(f"{text!r} is not a JSON path (it starts with $)")
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise SpecError(f"{text!r}: only $.name, $[N] and $[\"name\"] steps are "
                            f"understood (at {text[pos:]!r}: no wildcards, .., filters "
                            "or slices)")
        steps.append(m[1] if m[1] is not None else int(m[2]) if m[2] is not None else m[3])
        pos = m.end()
    if not steps:
        raise SpecError(f"{text!r}: a JSON path needs at least one step ($.name)")
    return tuple(steps)


def walk(doc: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` in a parsed JSON document, or _MISSING."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(doc, list) or step >= len(doc):
                return _MISSING
        elif not isinstance(doc, dict) or step not in doc:
            return _MISSING
        doc = doc[step]
    return doc


@dataclass(frozen=True, slots=True)
class Capture:
    """One captured variable: its name, where it comes from ("json", "header", "regex")
    and the path, lower-cased header name or compiled pattern."""

    name: str
    source: str
    spec: str  # as written in the plan
    path: tuple[str | int, ...] = ()
    header: bytes = b""
    pattern: re.Pattern[bytes] | None = None

    def take(self, resp: Response) -> bytes | None:
        """The value this response gives, or None (not there, too long, or not text that
        fits in a request: no CR, LF or other control characters)."""
        if self.source == "header":
            value = resp.header(self.header)
        elif self.source == "regex":
            assert self.pattern is not None
            m = self.pattern.search(resp.body)
            value = None if m is None else m[1] if m.re.groups else m[0]
        else:
            found = walk(resp.json(), self.path)
            value = None if found is _MISSING else _text(found)
        if value is None or len(value) > MAX_CAPTURED or not _printable(value):
            return None
        return value


def _text(v: Any) -> bytes:
    """A JSON value as a template takes it: a string's text, else its JSON."""
    if isinstance(v, str):
        return v.encode("utf-8")
    return json.dumps(v, separators=(",", ":")).encode("utf-8")


def _printable(v: bytes) -> bool:
    return not any(b < 32 or b == 127 for b in v)


def parse_capture(name: Any, spec: Any) -> Capture:
    """``name = "$.token"`` | ``"header:Location"`` | ``"re:id=(\\d+)"``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SpecError(f"{name!r} is not a variable name (letters, digits, _)")
    if not isinstance(spec, str):
        raise SpecError(f"{name}: expected \"$.path\", \"header:NAME\" or \"re:PATTERN\"")
    if spec.startswith("header:"):
        header = spec[7:].strip()
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", header):
            raise SpecError(f"{name}: {spec!r}: not a header name")
        return Capture(name, "header", spec, header=header.lower().encode("ascii"))
    if spec.startswith("re:"):
        try:
            pattern = re.compile(spec[3:].encode("utf-8"))
        except re.error as exc:
            raise SpecError(f"{name}: {spec!r}: not a regular expression ({exc})") from None
        return Capture(name, "regex", spec, pattern=pattern)
    if spec.startswith("$"):
        return Capture(name, "json", spec, path=parse_path(spec))
    raise SpecError(f"{name}: {spec!r}: expected \"$.path\", \"header:NAME\" or "
                    "\"re:PATTERN\"")


@dataclass(frozen=True, slots=True)
class Check:
    """What a response must satisfy (None or empty: not checked). ``kind``: its error kind,
    ``check_<name>``. ``status``: the accepted codes, instead of the run's --accept."""

    kind: str
    spec: str  # as written in the plan (JSON)
    status: frozenset[int] | None = None
    json: tuple[tuple[tuple[str | int, ...], Any, re.Pattern[str] | None], ...] = ()
    contains: bytes | None = None
    not_contains: bytes | None = None
    max_bytes: int | None = None

    def fails(self, resp: Response) -> bool:
        """Whether the response (of an accepted status) breaks a check of the body."""
        body = resp.body
        if self.max_bytes is not None and len(body) > self.max_bytes:
            return True
        if self.contains is not None and self.contains not in body:
            return True
        if self.not_contains is not None and self.not_contains in body:
            return True
        return any(not _matches(walk(resp.json(), path), want, rx)
                   for path, want, rx in self.json)

    @property
    def needs_body(self) -> bool:
        return bool(self.json) or self.contains is not None or \
            self.not_contains is not None or self.max_bytes is not None


def _matches(found: Any, want: Any, rx: re.Pattern[str] | None) -> bool:
    if found is _MISSING:
        return False
    if rx is not None:
        return rx.search(found if isinstance(found, str) else _text(found).decode()) is not None
    if isinstance(want, bool) or isinstance(found, bool):
        return isinstance(found, bool) and isinstance(want, bool) and found == want
    return bool(found == want)


def parse_check(spec: Any, request: str, accept: Any) -> Check:
    """A ``check`` table; ``accept``: parses a status set ("200,201", "2xx")."""
    if not isinstance(spec, dict):
        raise SpecError("expected a table such as { status = \"200\", contains = \"ok\" }")
    for key in spec:
        if key not in CHECK_KEYS:
            raise SpecError(f"unknown key {key!r} (known: {', '.join(sorted(CHECK_KEYS))})")
    name = spec.get("name", request)
    if not isinstance(name, str) or not _CHECK_NAME.fullmatch(name):
        raise SpecError(f"name: {name!r} is not a name (letters, digits, _ and -)")
    status = None
    if "status" in spec:
        if not isinstance(spec["status"], (str, int)) or isinstance(spec["status"], bool):
            raise SpecError("status: expected codes such as \"200,201\" or \"2xx\"")
        status = frozenset(accept(str(spec["status"])))
    return Check(f"check_{name}", json.dumps(spec, sort_keys=True, default=str), status,
                 _json_checks(spec.get("json", {})), _bytes_of(spec, "contains"),
                 _bytes_of(spec, "not_contains"), _max_bytes(spec.get("max_bytes")))


def _json_checks(table: Any) -> tuple:
    if not isinstance(table, dict):
        raise SpecError("json: expected a table of \"$.path\" = value")
    out = []
    for path, want in table.items():
        rx = None
        if isinstance(want, str) and want.startswith("re:"):
            try:
                rx = re.compile(want[3:])
            except re.error as exc:
                raise SpecError(f"json.{path}: not a regular expression ({exc})") from None
        elif isinstance(want, (dict, list)):
            raise SpecError(f"json.{path}: compare a value (string, number, boolean)")
        out.append((parse_path(path), want, rx))
    return tuple(out)


def _bytes_of(spec: dict, key: str) -> bytes | None:
    v = spec.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise SpecError(f"{key}: expected a non-empty string")
    return v.encode("utf-8")


def _max_bytes(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1 << 40:
        raise SpecError(f"max_bytes: {v!r} must be a whole number of bytes, 0 or more")
    return v


class Response:
    """One whole response's bytes (its 1xx heads before it included): the final head, its
    headers looked up by lower-cased name, the body (de-chunked) and its JSON, parsed once
    when first asked (None when it is not JSON)."""

    __slots__ = ("head", "body", "_doc")

    def __init__(self, raw: bytes) -> None:
        head, _, rest = raw.partition(b"\r\n\r\n")
        while head[9:10] == b"1" and rest.startswith(b"HTTP/"):  # 1xx: the final one follows
            head, _, rest = rest.partition(b"\r\n\r\n")
        self.head = head
        self.body = _dechunk(rest) if _chunked(head) else rest
        self._doc: Any = _MISSING

    def header(self, name: bytes) -> bytes | None:
        """The last value of header ``name`` (lower-case), stripped, or None."""
        found = None
        for line in self.head.split(b"\r\n")[1:]:
            k, sep, v = line.partition(b":")
            if sep and k.strip().lower() == name:
                found = v.strip()
        return found

    def headers(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower-case), in order."""
        out = []
        for line in self.head.split(b"\r\n")[1:]:
            k, sep, v = line.partition(b":")
            if sep and k.strip().lower() == name:
                out.append(v.strip())
        return out

    def json(self) -> Any:
        if self._doc is _MISSING:
            try:
                self._doc = json.loads(self.body)
            except ValueError:
                self._doc = None
        return self._doc


def _chunked(head: bytes) -> bool:
    low = head.lower()
    return b"\r\ntransfer-encoding:" in low and b"chunked" in low


def _dechunk(data: bytes) -> bytes:
    """A chunked body's data (the stream was checked by the parser that cut it)."""
    out: list[bytes] = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return b"".join(out)
        size = int(data[pos:eol].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(data[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2


def read_response(raw: bytes) -> Response:
    return Response(raw)
