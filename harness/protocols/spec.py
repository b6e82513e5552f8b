"""What a protocol declares about itself (:class:`Spec`), and its options (:class:`Option`).

A spec is plain data, light to import: config, the CLI, aggregation and the diagnosis read
it without the worker stack (no sockets, numpy or websockets). Its worker-side part (the
factory of its sans-I/O protocol object, its transport and handshake, its hooks after a
round and at the end of a step) is named by ``wire``, a ``module:attribute`` path the worker
imports when it runs a step (harness.protocols.wire).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Guess = Callable[..., str]  # (raw bytes, framing, hung_up, ...) -> one line


@dataclass(frozen=True, slots=True)
class Option:
    """One setting a protocol owns: its config key (``[run]``), its flag, its type and range
    (as harness.core.specs.Spec: "bool", "str", "strs", "int", "float"), its default and help."""

    key: str
    flag: str
    kind: str
    default: object = None
    lo: float | None = None
    hi: float | None = None
    help: str = ""
    zero_or: float | None = None  # a float that takes 0 (off) or a value in [zero_or, hi]
    applies: str = ""  # the runs it applies to, said, when more than one protocol owns it


@dataclass(frozen=True, slots=True)
class Spec:
    """A protocol, as the rest of harness needs to know it.

    ``schemes`` maps each URL scheme that selects it to its default port (``tls_schemes``:
    those that mean TLS); ``workload_protocol`` is the ``protocol`` attribute of the
    workloads it runs (workloads/base.py); ``sort`` is the kind of run its options apply to
    (harness.core.specs.APPLIES), said by ``applies_to``; ``error_prefixes`` the error kinds it
    counts (``redis_ERR``), ``failed_replies`` those that are failed replies in the error rate;
    ``what`` names what it sends, for the diagnosis, and ``guess`` says why nothing valid
    came back; ``extras`` the keys it adds to a step's results; ``target`` its built-in server
    (a harness.targets module), if any; ``wire`` its worker-side part."""

    name: str
    workload_protocol: str
    wire: str
    guess: Guess
    what: str
    schemes: dict[str, int] = field(default_factory=dict)
    tls_schemes: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    sort: str = ""
    applies_to: str = ""
    error_prefixes: tuple[str, ...] = ()
    failed_replies: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    target: str | None = None

    def default_port(self, scheme: str) -> int:
        return self.schemes[scheme]
