"""Think times and user classes, checked: ``--think`` / ``think = ...`` and the
``[[users]]`` table of harness.toml (or of a ``--requests FILE``).

A think time is seconds: a number (constant) or ``"LO-HI"`` (uniform, like Locust's
``between(LO, HI)``), 0 to 3600. A user class is ``name``, ``weight`` (its share of the
connections, > 0), an optional ``think`` (else the run's), and ``requests``: its own
``[[users.requests]]`` table, same schema as ``[[requests]]`` (harness.wire.reqtable). Its
requests become kinds named ``CLASS.REQUEST``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from harness.core.specs import CORE_SPEC, ConfigError, cut
from harness.core.users import UserClass
from harness.wire.reqtable import Rendered, parse_requests

USER_KEYS = {"name", "weight", "think", "requests"}
MAX_CLASSES = 256


def parse_think(value: Any, where: str) -> tuple[float, float]:
    """A think time as (low, high) seconds: ``2`` or ``"2"`` (constant), ``"1-5"``
    (uniform); each bound finite, 0 to 3600, low <= high."""
    hi_limit = CORE_SPEC["think"].hi
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where}: {cut(repr(value))}: expected seconds (2) or a range "
                          "(\"1-5\")")
    if isinstance(value, str):
        lo, hi = _bounds(value.strip(), where)
    else:
        lo = hi = float(value)
    for v in (lo, hi):
        if not math.isfinite(v) or not 0 <= v <= hi_limit:
            raise ConfigError(f"{where}: {cut(value)} out of range (0 to {hi_limit:g} s)")
    if lo > hi:
        raise ConfigError(f"{where}: {cut(value)}: the low bound is above the high one "
                          f"(write {hi:g}-{lo:g})")
    return lo, hi


def _bounds(text: str, where: str) -> tuple[float, float]:
    """``"2"`` -> (2, 2); ``"1-5"`` or ``"0.2 - 0.4"`` -> (1, 5); anything else refused."""
    try:
        v = float(text)
        return v, v
    except ValueError:
        pass
    lo, sep, hi = text.partition("-")
    try:
        if sep and lo.strip() and hi.strip():
            return float(lo), float(hi)
    except ValueError:
        pass
    raise ConfigError(f"{where}: {cut(text)!r} is not a think time (seconds such as 2, or a "
                      "range such as 1-5)")


def parse_users(table: Any, where: str, host: str, seed: int, think: tuple[float, float],
                think_flag: bool = False
                ) -> tuple[tuple[UserClass, ...], tuple[Rendered, ...]]:
    """The ``[[users]]`` list ``table`` (from ``where``): the classes, and every class's
    requests rendered for ``host``, class by class (kind names ``CLASS.REQUEST``). A class
    without ``think`` takes the run's ``think``; with ``think_flag`` (``--think`` given on
    the command line, say to shorten a plan) every class takes it."""
    if not isinstance(table, list) or not table or len(table) > MAX_CLASSES:
        raise ConfigError(f"{where}: users must be a list of 1 to {MAX_CLASSES} tables "
                          "([[users]] with name, weight, think, [[users.requests]])")
    classes: list[UserClass] = []
    requests: list[Rendered] = []
    for i, u in enumerate(table):
        cls, reqs = _user(i, u, where, host, seed, think, len(requests))
        if think_flag:
            cls = replace(cls, think_s=think[0], think_max_s=think[1])
        if any(c.name == cls.name for c in classes):
            raise ConfigError(f"{where}: users: the name {cut(cls.name)!r} is given twice")
        classes.append(cls)
        requests.extend(reqs)
    return tuple(classes), tuple(requests)


def _user(i: int, u: Any, where: str, host: str, seed: int, think: tuple[float, float],
          first: int) -> tuple[UserClass, list[Rendered]]:
    at = f"{where}: users[{i}]"
    if not isinstance(u, dict):
        raise ConfigError(f"{at} must be a table")
    for key in u:
        if key not in USER_KEYS:
            raise ConfigError(f"{where}: unknown key users[{i}].{cut(key)} "
                              f"(known: {', '.join(sorted(USER_KEYS))})")
    name = u.get("name", f"user{i}")
    if not isinstance(name, str) or not name or not name.isprintable() or "." in name:
        raise ConfigError(f"{at}.name: {cut(repr(name))}: expected a printable name "
                          "without dots")
    at = f"{where}: users[{i}] ({cut(name)})"
    weight = u.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
            or not 0 < weight <= 1e9:
        raise ConfigError(f"{at}.weight: {cut(repr(weight))} must be a number above 0 "
                          "(at most 1e9): the class's share of the connections")
    lo, hi = parse_think(u["think"], f"{at}.think") if "think" in u else think
    if "requests" not in u:
        raise ConfigError(f"{at}: a user class needs requests ([[users.requests]] with "
                          "name, weight, method, path, ...)")
    reqs = parse_requests(u["requests"], f"{at}", host, seed + 7919 * (i + 1))
    reqs = tuple(Rendered(f"{name}.{r.name}", r.weight, r.pool) for r in reqs)
    return (UserClass(name, float(weight), lo, hi, first, len(reqs),
                      tuple(r.weight for r in reqs)), list(reqs))
