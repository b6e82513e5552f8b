"""The checks of one setting's value against its type and range, and the errors they raise.

The [run] settings are declared once (the core's in :mod:`harness.core.settings`, each
protocol's in its package); :mod:`harness.config.table` puts them together with the other
tables of harness/config/default.toml, and :mod:`harness.config.build` reads a file and
builds the Plan with them. Every problem raises :class:`ConfigError` with one line naming
the bad key or flag.
"""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

from harness.core.settings import (
    CORE_KEYS,
    DAY_S,
    MAX_CONNS,
    MAX_INT64,
    MAX_MESSAGES,
    Spec,
)

__all__ = ["DAY_S", "MAX_CONNS", "MAX_INT64", "MAX_MESSAGES", "Spec"]

# The type and range of each of the core's [run] keys; the run's whole table (the protocols'
# keys too), its built-in values and the tables of default.toml are harness.config.table's.
CORE_SPEC: dict[str, Spec] = {s.key: s.spec for s in CORE_KEYS if s.key and s.spec}
MIX_KEYS = {"by", "kinds"}
KIND_KEYS = {"name", "weight", "size"}
SCENARIO_ONLY = {"stages", "description"}
STAGE_KEYS = {"conns", "duration", "rate", "label"}
MAX_CONFIG_BYTES = 1 << 20


LIMIT_SPEC = Spec("float", -1e15, 1e15)  # [degradation] and [thresholds]: <= 0 is off
STAGE_SPEC = {"conns": Spec("int", 1, MAX_CONNS), "duration": CORE_SPEC["duration"],
              "rate": CORE_SPEC["rate"], "label": Spec("str")}
KIND_SPEC = {"name": Spec("str"), "weight": Spec("float", 0, 1e9), "size": Spec("size")}
EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false",
            "str": "a string", "ints": "an integer or a list of integers",
            "size": "an integer, a \"LO-HI\" string or a list of integers",
            "strs": "a string or a list of strings",
            "think": "seconds (a number) or a \"LO-HI\" string"}
MAX_CORPUS_BYTES = 16 * 1024 * 1024  # a --corpus file (held in memory by every worker)
MAX_CORPUS_LINES = 1_000_000


class ConfigError(ValueError):
    """A bad flag or config key: the message is one line naming it."""


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_ok(v: Any, kind: str) -> bool:
    if kind in ("ints", "size"):
        return is_int(v) or isinstance(v, str) or (
            isinstance(v, list) and all(is_int(x) for x in v))
    if kind == "think":
        return is_int(v) or isinstance(v, (float, str))
    if kind == "strs":
        return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    return {"int": is_int(v), "float": is_int(v) or isinstance(v, float),
            "bool": isinstance(v, bool), "str": isinstance(v, str)}[kind]


def check_type(value: Any, spec: Spec, where: str) -> None:
    """A TOML value of the type ``spec`` wants: no coercion (``"false"`` is not false, true
    is not 1, 1.5 is not an integer)."""
    if not _type_ok(value, spec.kind):
        raise ConfigError(f"{where}: expected {EXPECTED[spec.kind]}, got {shown(value)}")


def shown(v: Any) -> str:
    """A value as the user wrote it in TOML, with its type, cut to a readable length."""
    kind = ("a boolean" if isinstance(v, bool) else "a string" if isinstance(v, str) else
            "a list" if isinstance(v, list) else "a table" if isinstance(v, dict) else
            "an integer" if isinstance(v, int) else "a number" if isinstance(v, float) else
            type(v).__name__)
    text = ("true" if v is True else "false" if v is False else repr(v))
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def flag_name(run: dict, key: str) -> str:
    """The flag or the file key a setting came from (``--connect-timeout``: a [run] key's
    flag is its name with dashes, harness.core.settings.Setting.key)."""
    return run.get("__names__", {}).get(key, "--" + key.replace("_", "-"))


def parse_int_list(value: Any, flag: str, lo: int = 1, hi: float = math.inf) -> list[int]:
    """``"10,100,1000"`` or a TOML list or an int -> [10, 100, 1000], each in [lo, hi]."""
    if is_int(value):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    else:
        raise ConfigError(f"{flag}: expected a comma-separated list of integers, got {value!r}")
    out = []
    for item in items:
        if isinstance(item, (bool, float)):
            raise ConfigError(f"{flag}: {item!r} is not an integer")
        try:
            n = int(item)
        except (TypeError, ValueError):
            raise ConfigError(f"{flag}: {cut(item)!r} is not an integer "
                              f"(expected e.g. 10,100,1000)") from None
        if n < lo:
            raise ConfigError(f"{flag}: {n} must be >= {lo}")
        if n > hi:
            raise ConfigError(f"{flag}: {cut(n)} is over the limit of {hi:,}")
        out.append(n)
    return out


def http_url_problem(url: str, query: bool = False) -> str | None:
    """Why ``url`` is not an http:// or https:// URL harness can send to (None when it is):
    no control character or space, a host (an IPv6 one in whole brackets), a port from 1 to
    65535 when one is given, and no ``?query`` or ``#fragment`` unless ``query``."""
    shown_url = repr(cut(url, 80))
    if not url.isprintable() or any(c.isspace() for c in url):
        return f"{shown_url}: a URL has no spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", a port out of range or not a number
        return f"{shown_url}: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shown_url} is not an http:// or https:// URL"
    if port == 0:
        return f"{shown_url}: port 0 is no port to send to (1 to 65535)"
    if not query and ("?" in url or "#" in url):
        return f"{shown_url}: no ?query or #fragment here (they would change where it goes)"
    return None


def cut(v: Any, most: int = 40) -> Any:
    """A value short enough for an error line (a 30-digit number, a long string)."""
    text = str(v)
    return v if len(text) <= most else text[: most - 3] + "..."


def number(run: dict, key: str, lo: float | None = None, kind: type | None = None,
           hi: float | None = None, spec: Spec | None = None) -> Any:
    """A finite number in [lo, hi] (by default the range of ``spec``, else of the core's
    CORE_SPEC[key]; a ``zero_or`` setting also takes 0); the error names the flag or the
    file key it came from. A boolean is not a number, and a whole number is not taken from
    a fraction. (harness.config.table.number: the same, with any key of the run's table.)"""
    spec = spec or CORE_SPEC.get(key, Spec("float"))
    lo = spec.lo if lo is None else lo
    hi = spec.hi if hi is None else hi
    kind = kind or (int if spec.kind in ("int", "ints") else float)
    v, name = run[key], flag_name(run, key)
    if isinstance(v, bool):
        raise ConfigError(f"{name}: {v!r} is not a number")
    if not isinstance(v, (int, float)):
        try:
            v = float(v) if kind is float else int(str(v), 10)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: {cut(v)!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name}: {v!r} must be a finite number")
    if kind is int and v != int(v):
        raise ConfigError(f"{name}: {v!r} must be a whole number")
    v = kind(v)
    if spec.zero_or is not None:
        if v == 0:
            return v
        lo = max(lo, spec.zero_or)
    if v < lo or v > hi:
        raise ConfigError(f"{name}: {cut(v)} out of range ({_bound(lo)} to {_bound(hi)}"
                          f"{', or 0 for off' if spec.zero_or is not None else ''})")
    return v


def _bound(x: float) -> str:
    return "any" if math.isinf(x) else f"{x:g}" if isinstance(x, float) else f"{x:,}"
