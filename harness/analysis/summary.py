"""One step's summary: a typed, frozen value whose ``to_json()`` is the step entry of
run.json (without histograms) and of ``--json``: docs/DESIGN.md's documented keys first, then
the rest, in the order run.json has always had them.

Units: latency dicts in ms (``p50`` ... ``max``, ``mean``), throughput in msgs/s and MB/s
(10^6 B), durations in s, CPU in % of one core. An optional part a step does not have is
None here and left out of the JSON (never written as null). For readers that take steps
as run.json dicts (the sweep verdicts, SLO checks), a summary also reads like one:
``summary["received"]``, ``summary.get("kinds")``; it cannot be changed, only replaced
(``dataclasses.replace``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.core.histogram import Histogram

Percentiles = dict[str, float | None]  # ms: p50, p90, p95, p99, p999, max, mean (or a subset)


@dataclass(frozen=True, slots=True, eq=False)  # equality: Mapping's, as its JSON
class StepSummary(Mapping[str, Any]):
    # -- every step (docs/DESIGN.md's documented keys among them)
    conns: int
    connected: int
    duration_s: float
    sent: int
    received: int
    throughput_msgs_s: float
    throughput_mb_s: float
    latency_ms: Percentiles
    connect_ms: Percentiles
    errors: dict[str, int]
    lost: int
    duplicates: int
    late: int
    client_cpu_pct: float
    client_cpu_pct_per_worker: list[float]
    client_bound: bool
    partial: bool
    sent_all: int
    replies: int
    reconnects: int = 0  # connections reopened after the server closed them: not errors
    conns_lost: int = 0  # connections that went down by a fault and were not back
    # -- when the step has them
    client_bound_rule: str | None = None
    client_wait_pct: float | None = None  # the busiest worker's run-queue wait, % of wall
    client_bound_detail: str | None = None
    first_unparsed: str | None = None  # escaped bytes (aggregate.escape_bytes)
    messages: int | None = None  # a --messages step
    rate: float | None = None  # open loop msgs/s per connection
    service_ms: Percentiles | None = None  # open loop, from the actual send
    behind_schedule: int | None = None  # open loop sends over 5 ms late
    kinds: list[dict] | None = None  # a message mix: a row per kind
    users: dict[str, int] | None = None  # [[users]]: connections per user class
    stages: list[dict] | None = None  # a staged step: a row per stage
    recovery: dict | None = None  # a spike's recovery time
    fanout: dict | None = None  # broadcast: deliveries, surplus, ..., per_node (spread out)
    kernel: dict[str, int] | None = None  # host TCP drop counters that moved
    resources: dict | None = None  # per role: CPU, RSS, threads, fds (watched)
    machine_cpu: dict | None = None  # per core: busy and others' CPU %
    shared_core: dict | None = None  # the core other processes took most of
    core_shared: bool | None = None  # ... and whether that leaves the step out
    judged_shared_core: bool | None = None  # --judge-shared-core: judged on a shared core
    trend: dict | None = None  # a long step's p99 (and server memory) trend
    handshake_ms: Percentiles | None = None  # TLS: TCP connected -> handshake done
    handshakes: int | None = None  # TLS handshakes done (the handshake histogram's count)
    tls_reasons: dict[str, str] | None = None  # TLS: the first reason of each tls_* kind
    status: dict[str, int] | None = None  # HTTP: responses of the window per status code
    failed_bodies: dict[str, str] | None = None  # [[users]]: the first failing response
    # (status line, body cut to 256 bytes, escaped) per check_/capture_ kind
    status_classes: dict[str, int] | None = None  # ... and per class ("2xx", "4xx")
    reconnect_ms: dict | None = None  # ws --reconnect: downtime per reconnect (p50, p99, max)
    ws_compress: dict | None = None  # ws --ws-compress: raw and wire bytes sent and received
    storm: dict | None = None  # ws --reconnect: the reconnect storm's recovery
    # (harness.analysis.storm)
    ramp: dict | None = None  # the connect ramp: rate and latency per second
    # (harness.analysis.ramp)
    extras: dict | None = None  # a protocol's own figures (Spec.extras: sio_acks, sio_ack_ms),
    # spread into the step as fanout is

    def to_json(self) -> dict[str, Any]:
        """The step as run.json has it: fields in order, None ones left out, the fan-out
        figures spread into the step (its ``lost`` and ``duplicates`` are the step's)."""
        out: dict[str, Any] = {}
        for name in ORDER:
            value = getattr(self, name)
            if value is None:
                continue
            if name in SPREAD:
                out.update(value)
            else:
                out[name] = value
        return out

    def __getitem__(self, key: str) -> Any:
        if key in ORDER and key not in SPREAD:
            value = getattr(self, key)
            if value is not None:
                return value
        for name in SPREAD:
            part = getattr(self, name)
            if part is not None and key in part:
                return part[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


ORDER = tuple(f.name for f in fields(StepSummary))
SPREAD = ("fanout", "extras")  # parts whose keys are the step's own in run.json


def ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 6)


def latency_ms(h: Histogram) -> dict[str, float | None]:
    p50, p90, p95, p99, p999 = h.percentiles([50, 90, 95, 99, 99.9]) if len(h) else [None] * 5
    return {"p50": ms(p50), "p90": ms(p90), "p95": ms(p95), "p99": ms(p99), "p999": ms(p999),
            "max": ms(h.max), "mean": ms(h.mean()) if len(h) else None}


def handshake_ms(h: Histogram) -> dict[str, float | None]:
    """TLS handshake time: p50, p90, p99, max (ms)."""
    p50, p90, p99 = h.percentiles([50, 90, 99]) if len(h) else [None] * 3
    return {"p50": ms(p50), "p90": ms(p90), "p99": ms(p99), "max": ms(h.max)}


def connect_ms(h: Histogram) -> dict[str, float | None]:
    p50, p99 = h.percentiles([50, 99]) if len(h) else [None, None]
    return {"p50": ms(p50), "p99": ms(p99), "max": ms(h.max)}
