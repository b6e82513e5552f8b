"""A run's figures as Prometheus text (exposition format 0.0.4: ``metrics.prom``, a push to
a Pushgateway, ``harness export openmetrics``) or as OpenMetrics 1.0 text (``harness export
openmetrics --format openmetrics``): the same samples, only counters' family names and the
final ``# EOF`` differ.

Units: seconds and bytes (Prometheus base units); counts are plain. Every sample of a step
carries ``step`` (its index) and ``conns``, plus ``rate`` (msgs/s per connection) in open
loop and ``messages`` in a message-count sweep; errors carry ``kind``.

Latency histograms are on harness's own bucket edges, so counts stay exact: a bucket holds
the integers ``[lower, upper)`` ns, so ``le`` is ``(upper - 1) / 1e9`` s, and only the edges
where the cumulative count rises are written (the skipped ones would repeat the count
below them), then ``+Inf`` (which also holds values past 2**43 ns), ``_count`` and ``_sum``.
Figures come from run.json as they are; nothing is recomputed but the cumulative sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from harness.core.histogram import Histogram, bucket_upper
from harness.core.safe import printable

PREFIX = "harness_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# step key -> (metric, type, help, scale from the step's unit to the metric's)
STEP_FIGURES = (
    ("sent", "sent_messages_total", "counter", "Messages sent in the measure window.", 1),
    ("received", "received_messages_total", "counter",
     "Valid replies received in the measure window.", 1),
    ("lost", "lost_messages_total", "counter", "Messages never answered by the end of drain.",
     1),
    ("duplicates", "duplicate_messages_total", "counter", "Messages answered twice.", 1),
    ("throughput_msgs_s", "throughput_messages_per_second", "gauge",
     "Replies per second in the measure window.", 1),
    ("throughput_mb_s", "throughput_bytes_per_second", "gauge",
     "Reply bytes per second in the measure window.", 1e6),
    ("duration_s", "step_duration_seconds", "gauge", "Length of the measure window.", 1),
    ("client_cpu_pct", "client_cpu_percent", "gauge",
     "Busiest worker's CPU, % of one core.", 1),
)
COUNTERS = {m for _k, m, t, _h, _s in STEP_FIGURES if t == "counter"} | {"errors_total"}
QUANTILES = (("p50", "0.5"), ("p90", "0.9"), ("p95", "0.95"), ("p99", "0.99"),
             ("p999", "0.999"), ("max", "1"))
HISTOGRAMS = (("latency", "latency_seconds", "Latency per message (from the intended send "
                                             "in open loop)."),
              ("service", "service_seconds", "Open loop: latency from the actual send."),
              ("connect", "connect_seconds", "Time to connect."),
              ("fanout", "fanout_seconds", "Broadcast: time until every receiver had a "
                                           "message."))


def _escape(v: object) -> str:
    """A label value: control characters (ESC, BEL, C1, bidi overrides) shown as their
    escape, as the table and the page show them (:func:`harness.core.safe.printable`),
    then the format's own escapes for backslash, newline and double quote."""
    text = printable(str(v), keep="\n")
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _value(v: float | int) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def step_labels(k: int, step: dict) -> dict[str, object]:
    out: dict[str, object] = {"step": k, "conns": step.get("conns")}
    if step.get("rate"):
        out["rate"] = step["rate"]
    if step.get("messages") is not None:
        out["messages"] = step["messages"]
    return out


def histogram_samples(name: str, h: Histogram, labels: dict[str, object]) -> Iterator[str]:
    """``_bucket`` lines at the upper edge of each non-empty bucket, ``+Inf``, ``_count``,
    ``_sum`` (seconds)."""
    nz = np.flatnonzero(h.counts)
    cum = np.cumsum(h.counts[nz])
    edges = (bucket_upper(nz) - 1) / 1e9
    for le, c in zip(edges.tolist(), cum.tolist(), strict=True):
        yield f"{name}_bucket{_labels({**labels, 'le': repr(le)})} {c}"
    yield f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {h.total}"
    yield f"{name}_count{_labels(labels)} {h.total}"
    yield f"{name}_sum{_labels(labels)} {_value(h.sum / 1e9)}"


def _family(name: str, kind: str, help_text: str, samples: list[str]) -> list[str]:
    if not samples:
        return []
    return [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}", *samples]


def _run_info(doc: dict, run_name: str) -> list[str]:
    env = doc.get("environment", {})
    info = {"run": run_name, "workload": doc.get("workload"), "target": doc.get("target"),
            "host": env.get("host"), "version": env.get("harness")}
    labels = {k: v for k, v in info.items() if v not in (None, "")}
    d = doc.get("degradation", {})
    out = _family("run_info", "gauge", "The run this text describes (always 1).",
                  [f"{PREFIX}run_info{_labels(labels)} 1"])
    out += _family("run_partial", "gauge", "1 when the run was cut short.",
                   [f"{PREFIX}run_partial {int(bool(doc.get('partial')))}"])
    out += _family("threshold_failures", "gauge", "Thresholds that failed.",
                   [f"{PREFIX}threshold_failures "
                    f"{len(doc.get('thresholds', {}).get('failed', []))}"])
    if d.get("last_healthy") is not None:
        out += _family("last_healthy_load", "gauge", "Load of the last healthy step.",
                       [f"{PREFIX}last_healthy_load {_value(d['last_healthy'])}"])
    out += _family("degraded", "gauge", "1 when a step crossed the degradation rule.",
                   [f"{PREFIX}degraded {int(d.get('degraded_at') is not None)}"])
    return out


def _step_families(steps: list[dict]) -> list[str]:
    out: list[str] = []
    for key, name, kind, help_text, scale in STEP_FIGURES:
        out += _family(name, kind, help_text,
                       [f"{PREFIX}{name}{_labels(step_labels(k, s))} "
                        f"{_value(s[key] * scale if scale != 1 else s[key])}"
                        for k, s in enumerate(steps) if s.get(key) is not None])
    out += _family("errors_total", "counter", "Errors by kind.",
                   [f"{PREFIX}errors_total{_labels({**step_labels(k, s), 'kind': kind})} {n}"
                    for k, s in enumerate(steps) for kind, n in s.get("errors", {}).items()])
    out += _family("latency_quantile_seconds", "gauge",
                   "Latency percentiles of the step's merged histogram.",
                   [f"{PREFIX}latency_quantile_seconds"
                    f"{_labels({**step_labels(k, s), 'quantile': q})} {_value(v / 1e3)}"
                    for k, s in enumerate(steps) for key, q in QUANTILES
                    if (v := s.get("latency_ms", {}).get(key)) is not None])
    return out


def _histogram_families(steps: list[dict]) -> list[str]:
    out: list[str] = []
    for key, name, help_text in HISTOGRAMS:
        samples = [line for k, s in enumerate(steps)
                   if (d := s.get("histograms", {}).get(key))
                   for line in histogram_samples(PREFIX + name, Histogram.from_dict(d),
                                                 step_labels(k, s))]
        out += _family(name, "histogram", help_text, samples)
    kinds = [line for k, s in enumerate(steps)
             for hk, d in s.get("histograms", {}).items() if hk.startswith("kind:")
             for line in histogram_samples(f"{PREFIX}kind_latency_seconds",
                                           Histogram.from_dict(d),
                                           {**step_labels(k, s), "kind": hk[5:]})]
    out += _family("kind_latency_seconds", "histogram", "Latency per message kind of a mix.",
                   kinds)
    return out


def run_text(doc: dict, run_name: str = "", openmetrics: bool = False) -> str:
    """The whole text for a run document (run.json; histograms as buckets when it has
    them, which the summary ``--json`` prints does not). Prometheus text 0.0.4 by default;
    ``openmetrics``: OpenMetrics 1.0 (a counter's family named without ``_total``, and
    ``# EOF`` at the end)."""
    steps = doc.get("steps", [])
    lines = _run_info(doc, run_name) + _step_families(steps) + _histogram_families(steps)
    if not openmetrics:
        return "\n".join(lines) + "\n"
    return "\n".join([_om_meta(line) for line in lines] + ["# EOF"]) + "\n"


def _om_meta(line: str) -> str:
    """A HELP or TYPE line of a counter family, named as OpenMetrics names it."""
    if line.startswith(("# HELP ", "# TYPE ")):
        head, name, rest = line[:7], *line[7:].split(" ", 1)
        if name.endswith("_total") and name.removeprefix(PREFIX) in COUNTERS:
            return f"{head}{name.removesuffix('_total')} {rest}"
    return line
