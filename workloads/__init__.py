"""Workloads: built-in ones by name, or a user's file by path (``--workload path/to/mine.py``).

A workload module defines ``WORKLOAD``, a subclass of :class:`workloads.base.Workload`.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from workloads.base import Kind, Workload

BUILTIN = ("echo", "chat", "http", "redis", "memcached")

__all__ = ["BUILTIN", "Kind", "Workload", "WorkloadError", "load"]


class WorkloadError(ValueError):
    """A workload that cannot be loaded or breaks the interface (one line, names the file)."""


_REQUIRED = ("name", "delivery", "hello", "kinds", "filler")


def load(spec: str) -> type[Workload]:
    """The workload class for a built-in name or a path to a ``.py`` file."""
    if spec in BUILTIN:
        module = importlib.import_module(f"workloads.{spec}")
        where = f"workloads/{spec}.py"
    else:
        path = Path(spec)
        if path.suffix != ".py" or not path.is_file():
            raise WorkloadError(f"workload {spec!r}: not a built-in ({', '.join(BUILTIN)}) "
                                "and not a .py file")
        where = str(path)
        try:
            mod_spec = importlib.util.spec_from_file_location(f"harness_user_{path.stem}", path)
            assert mod_spec is not None and mod_spec.loader is not None
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        except Exception as exc:  # any failure in user code is reported in one line
            raise WorkloadError(f"workload {where}: failed to import: "
                                f"{type(exc).__name__}: {exc}") from None
    cls = getattr(module, "WORKLOAD", None)
    if cls is None:
        raise WorkloadError(f"workload {where}: defines no WORKLOAD (a Workload subclass)")
    missing = [a for a in _REQUIRED if not hasattr(cls, a)]
    if missing:
        raise WorkloadError(f"workload {where}: WORKLOAD lacks {', '.join(missing)}")
    if cls.delivery not in ("echo", "broadcast"):
        raise WorkloadError(f"workload {where}: delivery must be 'echo' or 'broadcast', "
                            f"not {cls.delivery!r}")
    matching = getattr(cls, "matching", "stamp")
    if matching not in ("stamp", "order"):
        raise WorkloadError(f"workload {where}: matching must be 'stamp' or 'order', "
                            f"not {matching!r}")
    if matching == "order" and cls.delivery != "echo":
        raise WorkloadError(f"workload {where}: in-order matching needs delivery 'echo'")
    return cls
