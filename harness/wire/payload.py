"""What each message carries: its size (fixed, uniform or drawn from a list, in bytes on the
wire, framing included), the [mix] of message kinds, and the payload lines of a corpus file."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

from harness.core.specs import (
    KIND_KEYS,
    KIND_SPEC,
    MAX_CORPUS_BYTES,
    MAX_CORPUS_LINES,
    MIX_KEYS,
    ConfigError,
    number,
    parse_int_list,
)
from harness.wire import framing as framing_mod
from harness.wire.batch import Outbound, SizeSpec, size_bounds

if TYPE_CHECKING:
    from workloads.base import Kind


def parse_size(value: Any, name: str) -> SizeSpec:
    """``64`` (fixed), ``"64-1024"`` (uniform), ``"64,128,1024"`` or a list (drawn from)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list):
        sizes = parse_int_list(value, name)
        if not sizes:
            raise ConfigError(f"{name}: give at least one size in bytes")
        return sizes[0] if len(sizes) == 1 else sizes
    text = str(value).strip()
    if "-" in text:
        lo, _, hi = text.partition("-")
        try:
            bounds = (int(lo), int(hi))
        except ValueError:
            raise ConfigError(f"{name}: {text!r}: expected N, LO-HI or N,N,...") from None
        if not 0 < bounds[0] <= bounds[1]:
            raise ConfigError(f"{name}: {text!r}: need 0 < LO <= HI")
        return bounds
    sizes = parse_int_list(text, name)
    if not sizes:
        raise ConfigError(f"{name}: give a size in bytes")
    return sizes[0] if len(sizes) == 1 else sizes


def check_size(spec: SizeSpec, name: str, fr: framing_mod.Framing, max_frame: int) -> None:
    lo, hi = size_bounds(spec)
    room = Outbound.stamp_room(fr)
    if lo < room:
        raise ConfigError(f"{name}: {lo} bytes is too small for {fr.name} framing "
                          f"(at least {room}: frame header and stamp)")
    if hi > max_frame:
        raise ConfigError(f"{name}: {hi} exceeds --max-frame {max_frame}")
    if hi - fr.overhead() > fr.max_body:
        raise ConfigError(f"{name}: {hi} exceeds what {fr.name} framing can carry")


def parse_mix(table: dict, fr: framing_mod.Framing, max_frame: int) -> tuple[tuple, str]:
    """[mix]: ``by`` ("message" or "connection") and [[mix.kinds]] {name, weight, size}."""
    if not table:
        return (), "message"
    for key in table:
        if key not in MIX_KEYS:
            raise ConfigError(f"unknown key mix.{key} (known: {', '.join(sorted(MIX_KEYS))})")
    by = str(table.get("by", "message"))
    if by not in ("message", "connection"):
        raise ConfigError(f"mix.by: {by!r} must be 'message' or 'connection'")
    kinds = [_kind(i, k, fr, max_frame) for i, k in enumerate(table.get("kinds", []))]
    if not kinds or sum(k.weight for k in kinds) <= 0:
        raise ConfigError("mix.kinds: give at least one kind with a positive weight")
    return tuple(kinds), by


def _kind(i: int, k: Any, fr: framing_mod.Framing, max_frame: int) -> Kind:
    """[[mix.kinds]] entry ``i``: a table {name, weight, size}, as a workloads.base.Kind."""
    from workloads.base import Kind
    where = f"mix.kinds[{i}]"
    if not isinstance(k, dict):
        raise ConfigError(f"{where} must be a table")
    for key in k:
        if key not in KIND_KEYS:
            raise ConfigError(f"unknown key {where}.{key} (known: name, weight, size)")
    if "size" not in k:
        raise ConfigError(f"{where}.size: missing")
    spec = parse_size(k["size"], f"{where}.size")
    check_size(spec, f"{where}.size", fr, max_frame)
    weight = number({"w": k.get("weight", 1.0), "__names__": {"w": f"{where}.weight"}}, "w",
                    0.0, float, KIND_SPEC["weight"].hi)
    return Kind(str(k.get("name", f"kind{i}")), weight, spec)


def read_corpus(path: str, name: str, fr: framing_mod.Framing, max_frame: int
                ) -> tuple[bytes, ...]:
    """The payload lines of a corpus file: a regular file (a FIFO or a device such as
    /dev/zero would block or never end) of at most MAX_CORPUS_BYTES and MAX_CORPUS_LINES."""
    if not path:
        return ()
    raw = _read_regular(path, name, MAX_CORPUS_BYTES).split(b"\n")
    if raw[-1] == b"":
        raw.pop()  # after the last newline
    if not raw:
        raise ConfigError(f"{name}: {path} is empty")
    lines = [line.rstrip(b"\r") for line in raw]
    if len(lines) > MAX_CORPUS_LINES:
        raise ConfigError(f"{name}: {path} has {len(lines):,} lines, at most "
                          f"{MAX_CORPUS_LINES:,}")
    longest = max(len(x) for x in lines) + Outbound.stamp_room(fr)
    if longest > max_frame:
        raise ConfigError(f"{name}: a line of {path} makes a {longest}-byte message, over "
                          f"--max-frame {max_frame}")
    return tuple(lines)


def _read_regular(path: str, name: str, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit``; opened without blocking (a FIFO with no
    writer would block a plain open) and checked before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{name}: {path} is not a regular file")
        if st.st_size > limit:
            raise ConfigError(f"{name}: {path} is {st.st_size:,} bytes, at most {limit:,}")
        data = b""
        while len(data) <= limit and (part := os.read(fd, limit + 1 - len(data))):
            data += part
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the check
        raise ConfigError(f"{name}: {path} is over {limit:,} bytes")
    return data
