"""The commands of a redis or memcached run, checked and pre-rendered at plan time.

``--redis-cmd`` (ping, echo, set, get) and ``--mc-cmd`` (set, get) name one command, or a
weighted set ``set:1,get:3``; each command is a kind (a row and a histogram, as a ``[mix]``
kind or an HTTP request). Keys are ``key:{n}`` with n from 1 to ``--keys``; values are
``--size`` bytes (fixed, ``LO-HI`` or a list: drawn per rendering, seeded). Every command is
rendered into a pool of request bytes (:class:`harness.wire.reqtable.Rendered`): one rendering
per key when there are at most :data:`POOL` keys, else :data:`POOL` distinct keys drawn
(seeded), and at most :data:`POOL_BYTES` per pool; a worker only picks from the pools.

Sizes are bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.plan import Target
from harness.core.specs import KIND_SPEC, ConfigError, cut, flag_name, number
from harness.protocols.kvguess import KEYS
from harness.wire.batch import SizeSpec, size_bounds
from harness.wire.reqtable import Rendered

POOL = 1024  # most renderings of one command (as for an HTTP request)
POOL_BYTES = 64 << 20  # most bytes of one command's pool
REPLY_ROOM = 128  # bytes a reply adds to its value (RESP "$N", memcached VALUE ... END)
COMMANDS = {"redis": ("ping", "echo", "set", "get"), "memcached": ("set", "get")}
FLAGS = {"redis": "--redis-cmd", "memcached": "--mc-cmd"}
KV = tuple(COMMANDS)  # the workloads this module serves
_VALUE = b"abcdefghijklmnopqrstuvwxyz0123456789"  # value bytes (no space, CR or LF)


def kv_workload(targets: tuple[Target, ...], workload: str) -> str:
    """The workload of a run with ``redis://`` targets (redis), checked against them: a
    redis or memcached run needs host:port (or redis://) targets; the embedded server
    speaks neither."""
    schemes = {t.scheme for t in targets}
    if "redis" in schemes:
        if schemes != {"redis"}:
            raise ConfigError("--host: redis:// URLs and other targets cannot be mixed")
        if workload not in ("echo", "redis"):
            raise ConfigError(f"--workload: {cut(workload)!r} with a redis:// target (redis:// "
                              "selects the redis workload)")
        return "redis"
    if workload in KV:
        if not targets:
            raise ConfigError(f"--workload {workload}: needs a {workload} server: give --host "
                              "host:port (the embedded server speaks neither redis nor "
                              "memcached)")
        if schemes != {"tcp"}:
            raise ConfigError(f"--workload {workload}: needs host:port targets, not URLs")
    return workload


def parse_commands(text: str, workload: str, flag: str) -> list[tuple[str, float]]:
    """``"get"`` or ``"set:1,get:3"``: (command, weight) pairs, each command once, at least
    one weight above 0 (weights 0 to 1e9; a bare name weighs 1)."""
    known = COMMANDS[workload]
    out: list[tuple[str, float]] = []
    for item in str(text).split(","):
        name, sep, w = item.strip().partition(":")
        name = name.strip().lower()
        if name not in known:
            raise ConfigError(f"{flag}: unknown {workload} command {cut(name)!r} (known: "
                              f"{', '.join(known)}; a weighted set: set:1,get:3)")
        try:
            weight = float(w) if sep else 1.0
        except ValueError:
            raise ConfigError(f"{flag}: {cut(item.strip())!r}: the weight is not a number") \
                from None
        if not 0 <= weight <= KIND_SPEC["weight"].hi:
            raise ConfigError(f"{flag}: {cut(item.strip())!r}: a weight goes from 0 to "
                              f"{KIND_SPEC['weight'].hi:g}")
        if any(n == name for n, _ in out):
            raise ConfigError(f"{flag}: {name} is given twice")
        out.append((name, weight))
    if sum(w for _, w in out) <= 0:
        raise ConfigError(f"{flag}: give at least one command a positive weight")
    return out


def check_value_size(spec: SizeSpec, flag: str, max_frame: int) -> None:
    """A value (and the reply that carries it) must fit in --max-frame."""
    hi = size_bounds(spec)[1]
    if hi > max_frame - REPLY_ROOM:
        raise ConfigError(f"{flag}: {hi} bytes: a value must fit in --max-frame {max_frame} "
                          f"with its reply's header (at most {max_frame - REPLY_ROOM})")


def render(workload: str, commands: list[tuple[str, float]], keys: int, size: SizeSpec,
           seed: int) -> tuple[Rendered, ...]:
    """Each command's pool of request bytes, in the order given."""
    return tuple(_render(workload, name, weight, keys, size, seed, i)
                 for i, (name, weight) in enumerate(commands))


def _render(workload: str, name: str, weight: float, keys: int, size: SizeSpec, seed: int,
            i: int) -> Rendered:
    rng = np.random.default_rng([seed, 7, i])
    keyed = name in ("set", "get")
    valued = name in ("set", "echo")
    # every keyed command draws the same keys, so a get finds what a set stored
    key_ids = _keys(np.random.default_rng([seed, 7]), keys) if keyed \
        else np.ones(1, dtype=np.int64)
    n = len(key_ids) if keyed or not valued or isinstance(size, int) else POOL
    if valued:
        n = max(1, min(n, POOL_BYTES // (size_bounds(size)[1] + 64)))
    key_ids = key_ids[:n] if keyed else np.ones(n, dtype=np.int64)
    sizes = _sizes(rng, size, n) if valued else np.zeros(n, dtype=np.int64)
    make = _redis if workload == "redis" else _memcached
    pool = [make(name, b"key:%d" % k, _value(int(s)))
            for k, s in zip(key_ids.tolist(), sizes.tolist(), strict=True)]
    return Rendered(name, weight, tuple(dict.fromkeys(pool)))


def _keys(rng: np.random.Generator, keys: int) -> np.ndarray:
    """Every key 1..keys when they fit a pool, else POOL distinct ones drawn."""
    if keys <= POOL:
        return rng.permutation(np.arange(1, keys + 1, dtype=np.int64))
    got = np.unique(rng.integers(1, keys + 1, POOL * 2))
    return rng.permutation(got)[:POOL]


def _sizes(rng: np.random.Generator, spec: SizeSpec, n: int) -> np.ndarray:
    if isinstance(spec, int):
        return np.full(n, spec, dtype=np.int64)
    if isinstance(spec, tuple):
        return rng.integers(spec[0], spec[1] + 1, n)
    return rng.choice(np.asarray(spec, dtype=np.int64), n)


def _value(size: int) -> bytes:
    return (_VALUE * (size // len(_VALUE) + 1))[:size]


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _redis(name: str, key: bytes, value: bytes) -> bytes:
    """A RESP request: an array of bulk strings."""
    args = {"ping": [b"PING"], "echo": [b"ECHO", value], "set": [b"SET", key, value],
            "get": [b"GET", key]}[name]
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


def _memcached(name: str, key: bytes, value: bytes) -> bytes:
    """A memcached text-protocol request (flags 0, no expiry)."""
    if name == "set":
        return b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)
    return b"get %s\r\n" % key


def plan_requests(run: dict[str, Any], workload: str, size: SizeSpec, max_frame: int,
                  seed: int) -> tuple[Rendered, ...]:
    """The rendered commands of a redis or memcached run, from ``run``'s ``redis_cmd`` or
    ``mc_cmd``, ``keys`` and ``size``."""
    key = "redis_cmd" if workload == "redis" else "mc_cmd"
    check_value_size(size, flag_name(run, "size"), max_frame)
    commands = parse_commands(str(run[key]), workload, flag_name(run, key))
    return render(workload, commands, number(run, "keys", spec=KEYS.spec), size, seed)
