"""Think times and user classes, checked: ``--think`` / ``think = ...`` and the
``[[users]]`` table of harness.toml (or of a ``--requests FILE``).

A think time is seconds: a number (constant) or ``"LO-HI"`` (uniform, like Locust's
``between(LO, HI)``), 0 to 3600. A user class is ``name``, ``weight`` (its share of the
connections, > 0), an optional ``think`` (else the run's), and ``requests``: its own
``[[users.requests]]`` table, same schema as ``[[requests]]`` (harness.wire.reqtable). Its
requests become kinds named ``CLASS.REQUEST``.

Flows (docs/users.md): ``on_start`` / ``on_stop`` name requests of the class (a request
named there is in the weighted loop only with a weight of its own), ``iterations`` (loop
requests per session: then on_stop, then on_start again), ``on_capture_missing``
("continue" or "restart") and ``cookies``; a request may have ``capture`` and ``check``
(harness.protocols.http.checks) and use a captured ``{name}`` in its path, headers or body.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from harness.core.specs import CORE_SPEC, ConfigError, cut
from harness.core.users import UserClass
from harness.protocols.http.checks import SpecError, parse_capture, parse_check
from harness.wire.reqtable import Rendered, parse_accept, parse_requests

USER_KEYS = {"name", "weight", "think", "requests", "on_start", "on_stop", "iterations",
             "on_capture_missing", "cookies"}
FLOW_KEYS = ("capture", "check")  # a request's keys that this module reads
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
    table, captures, checks = _flow_keys(u["requests"], u, at)
    names = {c.name for caps in captures for c in caps}
    reqs = parse_requests(table, f"{at}", host, seed + 7919 * (i + 1), frozenset(names))
    kinds = {r.name: first + k for k, r in enumerate(reqs)}
    reqs = tuple(Rendered(f"{name}.{r.name}", r.weight, r.pool, r.uses) for r in reqs)
    cls = UserClass(name, float(weight), lo, hi, first, len(reqs),
                    tuple(r.weight for r in reqs), captures=tuple(captures),
                    checks=tuple(checks))
    return _flow(cls, u, kinds, at), list(reqs)


def _flow_keys(table: Any, u: dict, at: str) -> tuple[Any, list[tuple], list]:
    """The class's requests without their ``capture`` and ``check`` keys (read here), a
    request named in on_start/on_stop given weight 0 unless it has one; and each one's
    captures and check."""
    if not isinstance(table, list):
        return table, [], []
    in_flow = {n for key in ("on_start", "on_stop") for n in _names(u.get(key, []), at, key)}
    out, captures, checks, seen = [], [], [], dict[str, str]()
    for k, r in enumerate(table):
        if not isinstance(r, dict):
            return table, [], []
        rname = r.get("name", f"request{k}")
        where = f"{at}: requests[{k}] ({cut(str(rname))})"
        caps = _captures(r.get("capture", {}), where)
        for c in caps:
            if c.name in seen and seen[c.name] != rname:
                raise ConfigError(f"{where}.capture.{c.name}: also captured by "
                                  f"{cut(seen[c.name])!r}: one request per variable")
            seen[c.name] = rname
        captures.append(caps)
        checks.append(_check(r["check"], str(rname), where) if "check" in r else None)
        _no_clash(caps, r.get("values"), where)
        plain = {key: v for key, v in r.items() if key not in FLOW_KEYS}
        if rname in in_flow and "weight" not in plain:
            plain["weight"] = 0.0
        out.append(plain)
    return out, captures, checks


def _no_clash(caps: tuple, values: Any, where: str) -> None:
    """A captured variable is not also a placeholder with values of its own request."""
    for c in caps:
        if isinstance(values, dict) and c.name in values:
            raise ConfigError(f"{where}.capture.{c.name}: also a placeholder with values "
                              f"(values.{c.name}): give the capture another name")


def _captures(spec: Any, where: str) -> tuple:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}.capture: expected a table of name = \"$.path\" | "
                          "\"header:NAME\" | \"re:PATTERN\"")
    try:
        return tuple(parse_capture(name, v) for name, v in spec.items())
    except SpecError as exc:
        raise ConfigError(f"{where}.capture: {exc}") from None


def _check(spec: Any, request: str, where: str) -> Any:
    try:
        return parse_check(spec, request, lambda text: parse_accept(text, f"{where}.check"))
    except SpecError as exc:
        raise ConfigError(f"{where}.check: {exc}") from None


def _names(v: Any, at: str, key: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v) or len(v) > 64:
        raise ConfigError(f"{at}.{key}: expected a list of request names (at most 64), "
                          "such as [\"login\"]")
    return v


def _flow(cls: UserClass, u: dict, kinds: dict[str, int], at: str) -> UserClass:
    """The class's flow keys, checked: on_start / on_stop (request names), iterations,
    on_capture_missing, cookies."""
    seq = {}
    for key in ("on_start", "on_stop"):
        for n in _names(u.get(key, []), at, key):
            if n not in kinds:
                raise ConfigError(f"{at}.{key}: no request named {cut(n)!r} in this class "
                                  f"(its requests: {', '.join(sorted(kinds))})")
        seq[key] = tuple(kinds[n] for n in u.get(key, []))
    loops = u.get("iterations", 0)
    if isinstance(loops, bool) or not isinstance(loops, int) or not 0 <= loops <= 10**9:
        raise ConfigError(f"{at}.iterations: {cut(repr(loops))} must be a whole number from "
                          "0 (the loop runs to the end of the step) to 1e9")
    if seq["on_stop"] and not loops:
        raise ConfigError(f"{at}.on_stop: needs iterations = N (loop requests per session, "
                          "then on_stop, then on_start again)")
    missing = u.get("on_capture_missing", "continue")
    if missing not in ("continue", "restart"):
        raise ConfigError(f"{at}.on_capture_missing: {cut(repr(missing))} must be "
                          "\"continue\" or \"restart\"")
    cls = replace(cls, on_start=seq["on_start"], on_stop=seq["on_stop"], iterations=loops,
                  restart=missing == "restart")
    cookies = u.get("cookies", cls.stateful)
    if not isinstance(cookies, bool):
        raise ConfigError(f"{at}.cookies: {cut(repr(cookies))} must be true or false")
    return replace(cls, cookies=cookies)


def check_flows(pacing: Any, users: tuple) -> None:
    """A class with state (a flow, captures, cookies) sends one request at a time per
    connection, each after the last response: the closed loop with --inflight 1."""
    stateful = next((u for u in users if u.stateful), None)
    if stateful is None:
        return
    if pacing.mode == "open":
        raise ConfigError(f"[[users]] {stateful.name}: a flow (on_start, captures, cookies) "
                          "waits for each response: no open-loop --rate")
    if pacing.inflight > 1:
        raise ConfigError(f"[[users]] {stateful.name}: a flow (on_start, captures, cookies) "
                          f"needs --inflight 1 (got {pacing.inflight}): each request waits "
                          "for the last response")
