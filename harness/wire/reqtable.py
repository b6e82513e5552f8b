"""The request table of an HTTP run: ``[[requests]]`` in harness.toml (or the same table in
a ``--requests FILE``), checked and pre-rendered.

Each entry is a kind (a row and a histogram, as a ``[mix]`` kind): ``name``, ``weight``,
``method``, ``path`` (a template such as ``/users/{user_id}/``), ``headers``, ``body`` (a
template) and ``values``: per placeholder an integer range ``"1-1000"``, a list, or
``{ file = "names.txt" }`` (a corpus file, one value per line). At plan time every request
is rendered (seeded) into a pool of at most :data:`POOL` byte strings; a worker only picks
from the pools, it never formats a request. The one exception: a placeholder that names a
variable captured from an earlier response (``captured``, [[users]] flows) stays in the
rendered bytes as ``{name}`` (in the path, a header value or the body); such a request
lists it in ``uses`` and is finished at send time (harness.protocols.http.flows).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.core.specs import KIND_SPEC, MAX_CORPUS_BYTES, MAX_CORPUS_LINES, ConfigError, cut
from harness.wire.payload import _read_regular

POOL = 1024  # most distinct renderings of one request
POOL_BYTES = 16 * 1024 * 1024  # about the most bytes one request's pool holds (fewer draws)
MAX_VALUE_CHARS = 4096  # the longest value of a list or a values file
MAX_VALUE_INT = 2**63 - 1  # the highest bound of an integer range
_RANGE = re.compile(r"([0-9]+)\s*-\s*([0-9]+)")
REQUEST_KEYS = {"name", "weight", "method", "path", "headers", "body", "values"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN = re.compile(r"[A-Z]{1,20}")


@dataclass(frozen=True, slots=True)
class Rendered:
    """One request of the table: its name, weight and pre-rendered byte strings."""

    name: str
    weight: float
    pool: tuple[bytes, ...]
    uses: tuple[str, ...] = ()  # captured variables left as {name}: rendered at send time


def parse_requests(table: Any, where: str, host: str, seed: int,
                   captured: frozenset[str] = frozenset()) -> tuple[Rendered, ...]:
    """The ``[[requests]]`` list ``table`` (from ``where``), rendered for ``host``;
    ``captured``: the variables its flows capture (left as placeholders)."""
    if not isinstance(table, list) or not table:
        raise ConfigError(f"{where}: requests must be a non-empty list of tables "
                          "([[requests]] with name, weight, method, path, ...)")
    out = [_request(i, r, where, host, seed, captured) for i, r in enumerate(table)]
    names = [r.name for r in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"{where}: requests: the name {cut(dup)!r} is given twice")
    if sum(r.weight for r in out) <= 0:
        raise ConfigError(f"{where}: requests: give at least one request a positive weight")
    return tuple(out)


def _request(i: int, r: Any, where: str, host: str, seed: int,
             captured: frozenset[str] = frozenset()) -> Rendered:
    at = f"{where}: requests[{i}]"
    if not isinstance(r, dict):
        raise ConfigError(f"{at} must be a table")
    for key in r:
        if key in ("capture", "check"):
            raise ConfigError(f"{where}: requests[{i}].{key}: captures and checks belong to "
                              "a [[users]] class (one is enough: [[users]] with its "
                              "[[users.requests]])")
        if key not in REQUEST_KEYS:
            raise ConfigError(f"{where}: unknown key requests[{i}].{cut(key)} "
                              f"(known: {', '.join(sorted(REQUEST_KEYS))})")
    name = _text(r, "name", f"request{i}", at)
    at = f"{where}: requests[{i}] ({cut(name)})"
    weight = _weight(r.get("weight", 1.0), at)
    method = _text(r, "method", "GET", at)
    if not _TOKEN.fullmatch(method):
        raise ConfigError(f"{at}.method: {cut(method)!r} is not an HTTP method (GET, POST, ...)")
    path = _text(r, "path", "/", at)
    body = _text(r, "body", "", at)
    headers = _headers(r.get("headers", {}), at)
    values = _values(r.get("values", {}), at)
    _known(path, body, values, captured, f"{at}", i)
    uses = tuple(sorted({ph for t in (path, body, *(v for _, v in headers))
                         for ph in _PLACEHOLDER.findall(t) if ph in captured
                         and ph not in values}))
    used = sorted({ph for t in (path, body) for ph in _PLACEHOLDER.findall(t)
                   if ph in values})
    is_json = any(k.lower() == "content-type" and "json" in v.lower() for k, v in headers)
    rng = np.random.default_rng([seed, i])
    n = _draws(path + body, values) if used else 1
    draws = {ph: values[ph].draw(rng, n) for ph in used}
    pool = []
    for j in range(n):
        pick = {ph: draws[ph][j] for ph in used}
        p = _fill(path, pick)
        b = _fill(body, pick)
        _check_rendered(_fill(p, dict.fromkeys(uses, "0")), _fill(b, dict.fromkeys(uses, "0")),
                        is_json, at)
        pool.append(_bytes(method, p, host, headers, b.encode("utf-8")))
    return Rendered(name, weight, tuple(dict.fromkeys(pool)), uses)


def _fill(text: str, pick: dict[str, str]) -> str:
    """``text`` with the placeholders named in ``pick`` filled in (others kept)."""
    return _PLACEHOLDER.sub(lambda m: pick.get(m.group(1), m.group(0)), text)


def _known(path: str, body: str, values: dict, captured: frozenset[str], at: str,
           i: int) -> None:
    """Every placeholder of the path and body has values or is a captured variable."""
    for text, part in ((path, "path"), (body, "body")):
        for ph in _PLACEHOLDER.findall(text):
            if ph not in values and ph not in captured:
                raise ConfigError(f"{at}.{part}: unknown placeholder {{{ph}}} (no "
                                  f"requests[{i}].values.{ph}"
                                  + (", and no capture of that name)" if captured else ")"))


def _draws(template: str, values: dict[str, Values]) -> int:
    """How many renderings: POOL, fewer when that many would pass POOL_BYTES (the template
    with every placeholder at its longest value)."""
    longest = len(template) + sum(values[ph].longest for ph in _PLACEHOLDER.findall(template))
    return max(1, min(POOL, POOL_BYTES // max(1, longest)))


def _text(r: dict, key: str, default: str, at: str) -> str:
    v = r.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(f"{at}.{key}: expected a string, not {cut(repr(v))}")
    return v


def _weight(v: Any, at: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not \
            0 <= v <= KIND_SPEC["weight"].hi or v != v:
        raise ConfigError(f"{at}.weight: {cut(repr(v))} must be a number from 0 to "
                          f"{KIND_SPEC['weight'].hi:g}")
    return float(v)


def _headers(h: Any, at: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(h, dict):
        raise ConfigError(f"{at}.headers must be a table of name = \"value\"")
    out = []
    for k, v in h.items():
        if not isinstance(v, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", k) \
                or not v.isprintable():
            raise ConfigError(f"{at}.headers.{cut(k)}: expected a header name and a printable "
                              "string value")
        if k.lower() in ("host", "content-length"):
            raise ConfigError(f"{at}.headers.{k}: set by harness")
        out.append((k, v))
    return tuple(out)


def _values(table: Any, at: str) -> dict[str, Values]:
    if not isinstance(table, dict):
        raise ConfigError(f"{at}.values must be a table (placeholder = source)")
    return {name: _source(v, f"{at}.values.{name}") for name, v in table.items()}


@dataclass(frozen=True, slots=True)
class Values:
    """Where a placeholder's values come from: the integers ``lo`` to ``hi`` (sampled, never
    listed), or ``items``. ``longest``: the most characters one value has."""

    lo: int = 0
    hi: int = -1
    items: tuple[str, ...] = ()

    @property
    def longest(self) -> int:
        return len(str(self.hi)) if not self.items else max(map(len, self.items))

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        if self.items:
            return [self.items[k] for k in rng.integers(0, len(self.items), n)]
        return [str(v) for v in rng.integers(self.lo, self.hi, n, dtype=np.int64,
                                             endpoint=True)]


def _source(v: Any, at: str) -> Values:
    """``"LO-HI"`` (integers), a list, or ``{ file = PATH }`` (one value per line)."""
    if isinstance(v, str):
        return _range(v, at)
    if isinstance(v, list) and v and all(isinstance(x, (str, int)) and not isinstance(x, bool)
                                         for x in v):
        return _items([str(x) for x in v], at)
    if isinstance(v, dict) and set(v) == {"file"} and isinstance(v["file"], str):
        lines = _read_regular(v["file"], at, MAX_CORPUS_BYTES).decode("utf-8", "replace")
        vals = [x.rstrip("\r") for x in lines.split("\n") if x.rstrip("\r")]
        if not vals or len(vals) > MAX_CORPUS_LINES:
            raise ConfigError(f"{at}: {cut(v['file'])} must hold 1 to {MAX_CORPUS_LINES:,} "
                              "values, one per line")
        return _items(vals, f"{at}: {cut(v['file'])}")
    raise ConfigError(f"{at}: expected an integer range \"LO-HI\", a non-empty list, or "
                      "{ file = PATH }")


def _range(v: str, at: str) -> Values:
    m = _RANGE.fullmatch(v.strip())
    if m is None:
        raise ConfigError(f"{at}: {cut(v)!r}: expected an integer range LO-HI (digits 0-9, "
                          "LO <= HI), a list, or { file = PATH }")
    too_long = max(len(m[1].lstrip("0")), len(m[2].lstrip("0"))) > len(str(MAX_VALUE_INT))
    if too_long or int(m[2]) > MAX_VALUE_INT or int(m[1]) > int(m[2]):
        raise ConfigError(f"{at}: {cut(v)!r}: expected LO <= HI, both from 0 to "
                          f"{MAX_VALUE_INT} (2**63-1)")
    return Values(int(m[1]), int(m[2]))


def _items(vals: list[str], at: str) -> Values:
    """A list's (or a file's) values, each at most MAX_VALUE_CHARS characters."""
    k, longest = max(enumerate(map(len, vals)), key=lambda kv: kv[1])
    if longest > MAX_VALUE_CHARS:
        raise ConfigError(f"{at}: value {k + 1} has {longest:,} characters, at most "
                          f"{MAX_VALUE_CHARS:,}")
    return Values(items=tuple(vals))


def _check_rendered(path: str, body: str, is_json: bool, at: str) -> None:
    if not path.startswith("/") or not path.isprintable() or " " in path:
        raise ConfigError(f"{at}.path: {cut(path)!r} is not a valid request path")
    if is_json:
        try:
            json.loads(body)
        except ValueError as exc:
            raise ConfigError(f"{at}.body: not valid JSON after substitution ({exc}): "
                              f"{cut(body)!r}") from None


def _bytes(method: str, path: str, host: str, headers: tuple[tuple[str, str], ...],
           body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


_ACCEPT_ITEM = re.compile(r"([1-9])xx|([1-9]\d\d)(?:-([1-9]\d\d))?")


def parse_accept(text: str, where: str) -> tuple[int, ...]:
    """The HTTP status codes that are not errors: a comma list of classes (``2xx``), codes
    (``404``) and ranges (``200-299``)."""
    codes: set[int] = set()
    for item in (t.strip().lower() for t in text.split(",")):
        m = _ACCEPT_ITEM.fullmatch(item)
        if m is None:
            raise ConfigError(f"{where}: {item!r} is not a status class (2xx), a code (404) "
                              f"or a range (200-299)")
        if m[1]:
            lo, hi = int(m[1]) * 100, int(m[1]) * 100 + 99
        else:
            lo = int(m[2])
            hi = int(m[3]) if m[3] else lo
        if hi < lo:
            raise ConfigError(f"{where}: {item!r} is an empty range")
        codes.update(range(lo, hi + 1))
    return tuple(sorted(codes))
