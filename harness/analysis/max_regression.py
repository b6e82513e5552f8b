"""``--max-regression``: the limits a comparison allows each figure before a significant
change is a regression, parsed from ``"p99=10%,throughput=5%"``. Latency and throughput
limits are relative changes (0.1 = 10%); the error rate's an absolute rise of the rate; the
lost limit a count (see harness.analysis.compare)."""

from __future__ import annotations

import math
import re

from harness.analysis.compare import LIMITED

ALIASES = {"p99.9": "p999", "error_rate": "errors", "tput": "throughput"}


def parse_limits(text: str) -> dict[str, float]:
    """``"p99=10%,throughput=5%"`` -> {"p99": 0.1, "throughput": 0.05}. Percentages or
    fractions; ``lost`` takes a count. ValueError (one line) on anything else."""
    out: dict[str, float] = {}
    if not text.strip():
        raise ValueError("no limit given (e.g. p99=10%,throughput=5%)")
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ValueError(f"{text!r}: an empty limit (a stray comma?): expected "
                             "FIGURE=LIMIT,... (e.g. p99=10%,throughput=5%)")
        name, sep, value = part.partition("=")
        name = ALIASES.get(name.strip().lower(), name.strip().lower())
        if name == "max":
            raise ValueError("max: the max is one sample, no test can judge its change "
                             "(limit p999 instead)")
        if not sep or name not in LIMITED:
            raise ValueError(f"{part!r}: expected FIGURE=LIMIT with FIGURE one of "
                             f"{', '.join(LIMITED)} (e.g. p99=10%,throughput=5%)")
        if name in out:
            raise ValueError(f"{name}: given twice")
        out[name] = _limit_value(name, value.strip())
    if not out:
        raise ValueError("no limit given (e.g. p99=10%,throughput=5%)")
    return out


_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")  # plain decimal: no sign, exponent, inf, nan


def _limit_value(name: str, value: str) -> float:
    """One limit: a plain decimal, with one optional trailing %; the error rate is a
    fraction of messages, so its limit is at most 100%."""
    pct = value.endswith("%")
    digits = value[:-1] if pct else value
    if digits.startswith("-") and _NUMBER.fullmatch(digits[1:]):
        raise ValueError(f"{name}={value}: a limit is a number >= 0")
    if not _NUMBER.fullmatch(digits):
        raise ValueError(f"{name}={value}: not a number (e.g. {name}=10% or {name}=0.1)")
    v = float(digits) / (100.0 if pct else 1.0)
    if not math.isfinite(v):
        raise ValueError(f"{name}={value}: a limit is a number >= 0")
    if name == "errors" and v > 1:
        raise ValueError(f"errors={value}: the error rate is at most 100%, so is its limit")
    if name == "throughput" and v > 1:
        raise ValueError(f"throughput={value}: throughput can drop by at most 100%, so a "
                         "limit over it never fires")
    if name == "lost" and (pct or v != int(v)):
        raise ValueError(f"lost={value}: the lost limit is a count of messages")
    return v
