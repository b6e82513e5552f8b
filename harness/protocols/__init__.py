"""The protocol registry: every protocol harness speaks declares itself in one module or
small package of this folder (its :class:`~harness.protocols.spec.Spec`), and the rest of
harness looks it up here instead of naming it: config (URL schemes, default ports, the
settings it owns and which runs they apply to), the worker (its sans-I/O protocol object,
transport and hooks, through ``Spec.wire``), the diagnosis (what it sent, its guess when
nothing valid came back) and aggregation (its error kinds).

Adding a protocol: a package here with a ``SPEC`` (its flags declared once, in
``Spec.settings``; its part of the plan from ``Spec.options``) and a ``wire`` module, listed
in REGISTRY, its tests, and its README section. TLS (harness.protocols.tls) is not a protocol
but a layer any transport takes (``Spec.tls_schemes``, ``--tls``).

This module and the specs are light: no sockets, numpy or websockets.
"""

from __future__ import annotations

from harness.core.settings import Setting
from harness.protocols import http, memcached, mqtt, redis, sio, sse, tcp, ws
from harness.protocols.layers import LAYERS
from harness.protocols.spec import Spec

REGISTRY: dict[str, Spec] = {s.name: s for s in (tcp.SPEC, http.SPEC, redis.SPEC,
                                                  memcached.SPEC, ws.SPEC, sio.SPEC,
                                                  sse.SPEC, mqtt.SPEC)}
SCHEMES: dict[str, Spec] = {scheme: s for s in REGISTRY.values() for scheme in s.schemes}
TLS_SCHEMES = frozenset(scheme for s in REGISTRY.values() for scheme in s.tls_schemes)
KV = ("redis", "memcached")  # the workloads whose requests are rendered at plan time


def by_name(name: str) -> Spec:
    """The protocol called ``name`` (KeyError if none)."""
    return REGISTRY[name]


def by_scheme(scheme: str) -> Spec | None:
    """The protocol a URL scheme selects ("https" -> http), or None ("tcp": raw host:port)."""
    return SCHEMES.get(scheme)


def by_workload(protocol: str) -> Spec:
    """The protocol a workload's ``protocol`` attribute names ("framed" -> tcp, "resp" ->
    redis); an unknown one is raw TCP's."""
    return next((s for s in REGISTRY.values() if s.workload_protocol == protocol),
                REGISTRY["tcp"])  # (in REGISTRY's order: "framed" is tcp's before ws's)


def of_run(workload_protocol: str, scheme: str) -> Spec:
    """The protocol of a run: its target's scheme when that scheme brings its own framing of
    messages (ws://), else its workload's."""
    by = by_scheme(scheme)
    if by is not None and by.workload_protocol == "framed":
        return by
    return by_workload(workload_protocol)


def settings() -> dict[str, tuple[Setting, ...]]:
    """The flags of the layers (TLS) and of every protocol, by owner, in REGISTRY's order:
    the part of the run's table (harness.config.table) that is not the core's."""
    return {**LAYERS, **{s.name: s.settings for s in REGISTRY.values()}}


__all__ = ["KV", "REGISTRY", "Spec", "by_name", "by_scheme", "by_workload", "of_run",
           "settings"]
