"""SLO expressions for ``harness search`` and the probes' verdicts: parsed from text such
as ``"p99<5ms and errors<0.1%"`` (GRAMMAR), checked against a step summary, shown back in
the units the user wrote. Latency is held in ms (written in us, ms or s), the error rate as
a fraction, throughput in msgs/s. Light on purpose: ``harness search -h`` imports it for
GRAMMAR alone (numpy, through harness.analysis.judge, only where the error rate is read)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

GRAMMAR = """SLO grammar:
  slo    := clause ( ("," | " and ") clause )*
  clause := METRIC OP VALUE [UNIT]
  METRIC := p50 | p90 | p95 | p99 | p999 | max | mean   (latency; UNIT us | ms | s, default ms)
          | errors                                      (error rate; VALUE with % or a fraction)
          | throughput                                  (msgs/s; optional UNIT /s)
  OP     := < | <= | > | >=
examples: "p99<5ms", "p99 < 5 ms and p50<=1ms", "errors<0.1%", "throughput>=10000\""""


LATENCY_METRICS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")


LATENCY_UNITS_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}


OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


_SPLIT = re.compile(r"\s*,\s*|\s+and\s+", re.IGNORECASE)


_CLAUSE = re.compile(
    r"^(?P<metric>[a-z0-9]+)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*(?P<unit>\S.*)?$",
    re.IGNORECASE,
)


class SloError(ValueError):
    """A malformed SLO expression; the message is one line naming the bad part (the grammar
    is ``GRAMMAR``, shown by ``harness search --help``)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison. ``value`` is canonical: ms (latency), fraction (errors), msgs/s
    (throughput); ``unit`` is how the user wrote it, used only for display."""

    metric: str
    op: str
    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {show(self.value, self.metric, self.unit)}"


@dataclass(frozen=True, slots=True)
class Slo:
    """A conjunction of clauses: a step meets the SLO when every clause holds."""

    clauses: tuple[Clause, ...]

    def __str__(self) -> str:
        return " and ".join(str(c) for c in self.clauses)


def parse_slo(text: str) -> Slo:
    """Parse ``text`` (see ``GRAMMAR``) into an :class:`Slo`; raise :class:`SloError`."""
    if not text or not text.strip():
        raise SloError("empty SLO expression")
    parts = _SPLIT.split(text.strip())
    if any(not p for p in parts):
        raise SloError(f"empty clause in {text!r}")
    return Slo(tuple(_parse_clause(p) for p in parts))


def _parse_clause(part: str) -> Clause:
    m = _CLAUSE.match(part)
    if m is None:
        raise SloError(f"cannot read clause {part!r}")
    metric = m["metric"].lower()
    op = m["op"]
    value = float(m["value"])
    unit = (m["unit"] or "").strip().lower().replace(" ", "")
    if not math.isfinite(value) or value < 0:
        raise SloError(f"clause {part!r}: the value must be a finite number >= 0")
    if metric in LATENCY_METRICS:
        unit = unit or "ms"
        if unit not in LATENCY_UNITS_MS:
            raise SloError(f"clause {part!r}: latency unit must be us, ms or s, not {unit!r}")
        return Clause(metric, op, value * LATENCY_UNITS_MS[unit], unit)
    if metric == "errors":
        if unit not in ("", "%"):
            raise SloError(f"clause {part!r}: errors take a % or a fraction, not {unit!r}")
        rate = value / 100.0 if unit == "%" else value
        if rate > 1.0:
            raise SloError(f"clause {part!r}: an error rate cannot exceed 100%")
        return Clause(metric, op, rate, unit or "fraction")
    if metric == "throughput":
        if unit not in ("", "/s", "msgs/s", "msg/s"):
            raise SloError(f"clause {part!r}: throughput is msgs/s (unit /s or none), "
                           f"not {unit!r}")
        return Clause(metric, op, value, "msgs/s")
    raise SloError(f"clause {part!r}: unknown metric {metric!r}")


def parse_percent(text: str) -> float:
    """A rate as a fraction: "0.1%" -> 0.001, "0.002" -> 0.002. ValueError outside [0, 1]."""
    raw = str(text).strip()
    pct = raw.endswith("%")
    number = raw[:-1].strip() if pct else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a rate: {text!r} (write a percentage like 0.1% or a "
                         f"fraction like 0.001)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a rate: {text!r} (must be a finite number >= 0)")
    rate = value / 100.0 if pct else value
    if rate > 1.0:
        hint = "" if pct else f" (did you mean {raw}%?)"
        raise ValueError(f"rate {text!r} is above 100%{hint}")
    return rate


def show(value: float, metric: str, unit: str) -> str:
    """``value`` (canonical units) as the user wrote the unit: "7.2 ms", "0.25%"."""
    if metric in LATENCY_METRICS:
        return f"{num(value / LATENCY_UNITS_MS[unit])} {unit}"
    if metric == "errors":
        return f"{num(value * 100.0)}%" if unit == "%" else num(value)
    return f"{num(value)} msgs/s"


def num(v: float) -> str:
    """Four significant digits, no exponent for everyday magnitudes."""
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.4g}"
    if abs(v) >= 1e4:
        return f"{v:.0f}"
    return f"{v:.3g}"


def observed(summary: dict, metric: str) -> float | None:
    """The summary's figure for ``metric``: latency in ms, errors as a fraction, msgs/s."""
    from harness.analysis.judge import error_rate
    if metric in LATENCY_METRICS:
        return (summary.get("latency_ms") or {}).get(metric)
    if metric == "errors":
        return error_rate(summary)
    return summary.get("throughput_msgs_s")


def slo_check(summary: dict, slo: Slo,
              max_errors: float | None = None) -> tuple[bool, list[str]]:
    """Does one step summary meet ``slo`` (and error rate <= ``max_errors``, a fraction)?

    Returns ``(ok, violations)``, one readable line per broken clause, e.g.
    "p99 7.2 ms >= 5 ms". A step without latency data fails every latency clause.
    """
    from harness.analysis.judge import error_rate
    out = []
    for c in slo.clauses:
        value = observed(summary, c.metric)
        if value is None:
            out.append(f"{c.metric}: no data (needed {c})")
        elif not OPS[c.op](value, c.value):
            out.append(f"{c.metric} {show(value, c.metric, c.unit)} {NEGATED[c.op]} "
                       f"{show(c.value, c.metric, c.unit)}")
    if max_errors is not None:
        rate = error_rate(summary)
        if rate > max_errors:
            out.append(f"errors {rate:.4%} > {max_errors:.4%} (max errors)")
    return not out, out
