"""The run's whole table of settings: the core's (harness.core.settings) and those the layers
and protocols of the registry declare (harness.protocols.settings), each flag once; from it
the type and range of every [run] key, its built-in value, the settings that apply to some
runs only, and the other tables and presets of harness/config/default.toml.

Everything that reads a [run] key by name, a protocol's included, reads it from here; the
core below knows only its own keys (harness.core.specs.CORE_SPEC).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from harness import protocols
from harness.core import specs
from harness.core.settings import CORE, Setting, Spec, table
from harness.core.specs import LIMIT_SPEC, MAX_INT64, ConfigError, flag_name

SETTINGS: tuple[Setting, ...] = table(CORE, protocols.settings())
RUN_KEYS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.spec is not None)

# The built-in defaults and scenario presets ship inside the package; ./harness.toml or
# --config FILE layers over them (see harness.config.file.load_file).
BUILTIN_PATH = "built-in defaults (harness/config/default.toml)"
# The type and range of every [run] key (flags are checked against the same ranges), and its
# built-in value.
RUN_SPEC: dict[str, Spec] = {s.key: s.spec for s in RUN_KEYS if s.key and s.spec}
RUN_DEFAULTS: dict[str, Any] = {s.key: s.toml_default for s in RUN_KEYS if s.key}


def _builtin() -> dict[str, Any]:
    text = resources.files("harness").joinpath("config/default.toml").read_text("utf-8")
    return {"run": RUN_DEFAULTS, **tomllib.loads(text)}


BUILTIN = _builtin()
TABLES = {"run": RUN_DEFAULTS, "degradation": BUILTIN["degradation"],
          "thresholds": BUILTIN["thresholds"]}
TABLE_SPEC = {"degradation": {k: LIMIT_SPEC for k in TABLES["degradation"]},
              "thresholds": {k: LIMIT_SPEC for k in TABLES["thresholds"]}
              | {"max_lost": Spec("int", -MAX_INT64, MAX_INT64)}}
# Flags whose name differs from the key, for error messages.
FLAG = {s.key: s.flag for s in RUN_KEYS if s.key}
KNOWN_TOP = set(TABLES) | {"scenarios", "env", "mix", "requests", "users", "alerts"}
# The settings that apply to some runs only: key -> (the runs it applies to, said as a
# phrase); see harness.core.settings.Applies.
APPLIES: dict[str, tuple[frozenset[str], str]] = {
    s.key: s.applies for s in RUN_KEYS if s.key and s.applies is not None}


def check_applies(run: dict, sort: str, label: str) -> None:
    """Every setting of APPLIES that ``run`` gives (a value other than its default) applies
    to a run of ``sort`` (``label``: that run's target, for the message)."""
    for key, (sorts, where) in APPLIES.items():
        if sort not in sorts and key in run and run[key] != RUN_DEFAULTS.get(key):
            raise ConfigError(f"{flag_name(run, key)} applies to {where}, not {label}")


def number(run: dict, key: str, lo: float | None = None, kind: type | None = None,
           hi: float | None = None) -> Any:
    """harness.core.specs.number with the type and range of any [run] key of the table."""
    return specs.number(run, key, lo, kind, hi, spec=RUN_SPEC.get(key))
