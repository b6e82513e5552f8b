"""Units shared by the whole package. Times are ns of ``time.monotonic_ns()`` unless a name
ends in ``_s`` (seconds)."""

from __future__ import annotations

SEC = 1_000_000_000  # ns in one second
