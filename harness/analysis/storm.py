"""A reconnect storm: many connections dropped at once (a server restart), and how long
until every one of them is back and delivering again.

Input: the step's ``--reconnect`` episodes, one row per connection lost, (lost, back,
delivering), seconds after the measure window opened, NaN where it did not happen: back is
the WebSocket handshake done again, delivering the first message received after it.

The storm is the episodes that began within ``STORM_S`` of the step's first loss. Its figures:
``at_s`` (that first loss), ``dropped``, ``back`` and ``delivering`` (how many of the dropped
connections got there), ``back_ms`` (from the first loss until the last of them was back)
and ``recovery_ms`` (until the last of them had delivered a message), each None unless all
got there; ``recovered`` (every dropped connection delivering again); ``later_drops``
(losses after the storm, not in its figures). Pure: no sockets, no clocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

STORM_S = 1.0  # losses within this long of the first one belong to the storm


def storm_figures(episodes: list[np.ndarray]) -> dict[str, Any] | None:
    """The storm of a step from its workers' episode rows; None when nothing was lost."""
    rows = np.concatenate([e.reshape(-1, 3) for e in episodes]) if episodes else \
        np.empty((0, 3))
    if not len(rows):
        return None
    start = float(np.min(rows[:, 0]))
    inside = rows[:, 0] <= start + STORM_S
    storm = rows[inside]
    back, deliv = storm[:, 1], storm[:, 2]
    n_back, n_deliv = int(np.count_nonzero(~np.isnan(back))), \
        int(np.count_nonzero(~np.isnan(deliv)))
    return {"at_s": round(start, 3), "dropped": len(storm), "back": n_back,
            "delivering": n_deliv,
            "back_ms": _span_ms(start, back) if n_back == len(storm) else None,
            "recovery_ms": _span_ms(start, deliv) if n_deliv == len(storm) else None,
            "recovered": n_deliv == len(storm),
            "later_drops": int(np.count_nonzero(~inside))}


def _span_ms(start: float, ends: np.ndarray) -> float:
    return round((float(np.max(ends)) - start) * 1000, 3)


def storm_text(s: dict[str, Any]) -> str:
    """One line: "8 connections dropped at 1.5 s: all back in 412 ms, all delivering in
    455 ms" or "... only 6 of 8 delivering by the end"."""
    head = f"{s['dropped']} connections dropped at {s['at_s']:.1f} s"
    if s["recovered"]:
        text = (f"{head}: all back in {s['back_ms']:.0f} ms, all delivering in "
                f"{s['recovery_ms']:.0f} ms")
    else:
        text = (f"{head}: NOT recovered: {s['back']} back, {s['delivering']} of "
                f"{s['dropped']} delivering by the end")
    if s["later_drops"]:
        text += f" ({s['later_drops']} more dropped later)"
    return text
