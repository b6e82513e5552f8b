"""Raw TCP's part in a worker's step: harness.protocols.wire's base, as it is."""

from __future__ import annotations

from harness.protocols.wire import WIRE

__all__ = ["WIRE"]
