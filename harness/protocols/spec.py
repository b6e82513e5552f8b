"""What a protocol declares about itself (:class:`Spec`), its flags among it
(:class:`~harness.core.settings.Setting`, declared once, there).

A spec is plain data, light to import: config, the CLI, aggregation and the diagnosis read
it without the worker stack (no sockets, numpy or websockets). Its worker-side part (the
factory of its sans-I/O protocol object, its transport and handshake, its hooks after a
round and at the end of a step) is named by ``wire``, a ``module:attribute`` path the worker
imports when it runs a step (harness.protocols.wire).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.core.settings import Setting

Guess = Callable[..., str]  # (raw bytes, framing, hung_up, ...) -> one line


@dataclass(frozen=True, slots=True)
class Spec:
    """A protocol, as the rest of harness needs to know it.

    ``schemes`` maps each URL scheme that selects it to its default port (``tls_schemes``:
    those that mean TLS); ``workload_protocol`` is the ``protocol`` attribute of the
    workloads it runs (workloads/base.py); ``sort`` is the kind of run its options apply to
    (harness.config.table.APPLIES), said by ``applies_to``; ``error_prefixes`` the error kinds it
    counts (``redis_ERR``), ``failed_replies`` those that are failed replies in the error rate;
    ``what`` names what it sends, for the diagnosis, and ``guess`` says why nothing valid
    came back; ``extras`` the keys it adds to a step's results; ``target`` its built-in server
    (a harness.targets module), if any; ``wire`` its worker-side part.

    ``settings``: its flags and [run] keys (harness.core.settings.Setting), declared here
    only: the run's table (harness.config.table) takes them from the registry, for the click
    options, ``-h``, the checks, the defaults and the docs' flag table. ``options``: its part
    of the plan (``Plan.options``): a ``module:function`` path, called at plan time with the
    checked [run] settings and the targets, that returns an object the worker's wire reads
    (None: the dict of its own settings' values). It raises
    harness.core.specs.ConfigError, one line, for a bad value."""

    name: str
    workload_protocol: str
    wire: str
    guess: Guess
    what: str
    schemes: dict[str, int] = field(default_factory=dict)
    tls_schemes: tuple[str, ...] = ()
    settings: tuple[Setting, ...] = ()
    options: str | None = None
    sort: str = ""
    applies_to: str = ""
    error_prefixes: tuple[str, ...] = ()
    failed_replies: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    target: str | None = None

    def default_port(self, scheme: str) -> int:
        return self.schemes[scheme]

    def plan_options(self, run: dict[str, Any], targets: tuple[Any, ...]) -> Any:
        """Its part of the plan (``Plan.options``), from the run's checked settings."""
        if self.options is None:
            return {s.key: run[s.key] for s in self.settings if s.key and s.key in run}
        import importlib
        module, _, name = self.options.partition(":")
        return getattr(importlib.import_module(module), name)(run, targets)
