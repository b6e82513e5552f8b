"""Which build of the hot path runs: mypyc-compiled modules, or the pure-Python source.

``python -m harness.build`` (setup.py with ``HARNESS_MYPYC=1``; mypy and a C compiler)
compiles :data:`MODULES` with mypyc, as black ships: the same source, typed, compiled to C
extensions that sit beside the ``.py`` files and are imported first. It is opt-in: on the
2-core VM it gained nothing measurable (docs/PERFORMANCE.md), so ``pip install -e .``
installs pure Python.

At import (``harness/__init__.py`` calls :func:`install`) the pure source is used instead
of the compiled modules, all of them together, when:

- ``HARNESS_PURE=1`` is set (the differential tests run both builds this way), or
- any compiled module's source changed since the build (its hash is not the one the
  build wrote in ``_compiled.json``): an edited ``.py`` is never shadowed by a stale
  extension. ``python -m harness.build`` rebuilds in place.

:func:`describe` says which, for ``harness --version``. Figures: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

# The hot path: what a worker runs per round (issue 21). Each is compiled on its own
# (mypyc's separate mode), so a module can be left out without touching the others.
MODULES = ("wire.batch", "wire.inbound", "worker.pacing", "worker.loops", "worker.schedule",
           "worker.recording", "wire.transport", "wire.rounds", "wire.protocol", "wire.poller",
           "core.histogram", "core.ledger", "worker.delivery", "wire.stamp", "worker.events",
           "worker.sends",
           "worker.worker")
HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "_compiled.json"

_state = {"build": "pure", "why": "not built: python -m harness.build compiles the hot path"}


def source(name: str) -> Path:
    """The ``.py`` file of a module of :data:`MODULES` (dotted below ``harness``)."""
    return HERE.joinpath(*name.split(".")).with_suffix(".py")


def source_hash(name: str) -> str:
    return hashlib.sha256(source(name).read_bytes()).hexdigest()[:16]


def _extensions(name: str, tails: tuple[str, ...] = ("", "__mypyc")) -> list[Path]:
    """The compiled files of a module: itself and, in mypyc's separate mode, its library."""
    base = source(name).with_suffix("")
    return [base.with_name(base.name + tail + s) for tail in tails
            for s in importlib.machinery.EXTENSION_SUFFIXES]


def _compiled_present() -> list[str]:
    return [m for m in MODULES if any(p.exists() for p in _extensions(m, ("",)))]


def _stale(built: dict[str, str]) -> list[str]:
    return [m for m in MODULES if m in built and built[m] != source_hash(m)]


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` source of the compiled modules, ahead of their extensions."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        pkg, _, name = fullname.partition(".")
        if pkg != __package__ or name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source(name))


def install() -> None:
    """Decide the build once, at ``import harness``; route imports to the source if pure."""
    present = _compiled_present()
    if not present:
        return
    try:
        built = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        built = {}
    stale = _stale(built) + [m for m in present if m not in built]
    if len(stale) > 3:
        stale = [*stale[:3], f"{len(stale) - 3} more"]
    if os.environ.get("HARNESS_PURE") == "1":
        _state.update(build="pure", why="HARNESS_PURE=1")
    elif stale:
        _state.update(build="pure", why=f"the compiled build is stale ({', '.join(stale)} "
                      "changed since it was built; python -m harness.build)")
    else:
        _state.update(build="mypyc", why=f"mypyc, {len(present)} modules")
        return
    sys.meta_path.insert(0, _PureFinder())


def compiled() -> bool:
    return _state["build"] == "mypyc"


def native() -> tuple[ModuleType | None, str]:
    """The C loops (``harness._hot``, harness/_hot.c, built by ``pip install -e .`` where a C
    compiler is; used through harness.wire.hot), or None, and why: not built, or
    ``HARNESS_PURE=1``. Importing it imports no numpy."""
    if os.environ.get("HARNESS_PURE") == "1":
        return None, "HARNESS_PURE=1"
    try:
        mod = importlib.import_module(f"{__package__}._hot")
    except ImportError:
        return None, "not built: pip install -e . builds it where a C compiler is"
    return mod, "harness._hot"


def describe() -> str:
    """For ``harness --version``: "native loops: yes (harness._hot), compiled: no (...)":
    the C loops, then the mypyc build ("compiled: yes (mypyc, 17 modules)")."""
    mod, why = native()
    return f"native loops: {'yes' if mod is not None else 'no'} ({why}), " \
        f"compiled: {'yes' if compiled() else 'no'} ({_state['why']})"


def loaded() -> dict[str, str]:
    """Each hot module as imported now: "mypyc" or "pure" (tests check the routing)."""
    out = {}
    for m in MODULES:
        mod = sys.modules.get(f"{__package__}.{m}")
        if mod is not None:
            out[m] = "pure" if str(mod.__file__).endswith(".py") else "mypyc"
    return out


def manifest_text() -> str:
    """What setup.py writes beside a build: each compiled module's source hash."""
    return json.dumps({m: source_hash(m) for m in MODULES}, indent=1) + "\n"


def clean() -> list[Path]:
    """Remove the compiled modules and the manifest: the source runs again."""
    gone = [p for m in MODULES for p in _extensions(m) if p.exists()] + \
        ([MANIFEST] if MANIFEST.exists() else [])
    for p in gone:
        p.unlink()
    return gone
