"""Broadcast (fan-out) figures of a step: every message's deliveries to every receiver,
merged across workers by message key; lost, surplus, duplicated and reordered deliveries
per node; and the fan-out time (intended send to the last receiver's first arrival, ns in,
ms out) of each message every receiver got."""

from __future__ import annotations

import numpy as np

from harness.analysis.summary import latency_ms
from harness.core.histogram import Histogram
from harness.core.ledger import FanoutPart
from harness.core.plan import Step
from harness.core.result import WorkerResult
from harness.core.units import SEC


def merge_fanout(parts: list[FanoutPart]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                   np.ndarray]:
    """Per distinct message: (key, receivers that got it, last first-arrival ns, intended ns)."""
    keys = np.concatenate([p.msg_key for p in parts])
    if not len(keys):
        e = np.zeros(0, dtype=np.int64)
        return keys, e, e, e
    count = np.concatenate([p.msg_count for p in parts])
    last = np.concatenate([p.msg_last for p in parts])
    tint = np.concatenate([p.msg_t for p in parts])
    order = np.argsort(keys, kind="stable")
    keys, count, last, tint = keys[order], count[order], last[order], tint[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return (keys[starts], np.add.reduceat(count, starts), np.maximum.reduceat(last, starts),
            tint[starts])


def fanout_figures(step: Step, results: list[WorkerResult], receivers: np.ndarray,
                   sent: int) -> tuple[dict, Histogram]:
    parts = [r.fanout for r in results if r.fanout is not None]
    n_nodes = len(receivers)
    uniq = sum((p.node_unique for p in parts), np.zeros(n_nodes, dtype=np.int64))
    dups = sum((p.node_dups for p in parts), np.zeros(n_nodes, dtype=np.int64))
    reord = sum((p.node_reordered for p in parts), np.zeros(n_nodes, dtype=np.int64))
    expected = sent * receivers
    total_receivers = int(receivers.sum())
    _, count, last, tint = merge_fanout(parts)
    done = count >= total_receivers
    fan = Histogram()
    if done.any():
        fan.record(last[done] - tint[done])
    first_send = min((r.first_send for r in results if r.first_send), default=0)
    last_send = max((r.last_send for r in results), default=0)
    last_recv = int(last.max()) if len(last) else 0
    per_node = [{"node": i, "receivers": int(receivers[i]),
                 "deliveries_expected": int(expected[i]), "deliveries": int(uniq[i]),
                 "lost": int(max(expected[i] - uniq[i], 0)),
                 "surplus": int(max(uniq[i] - expected[i], 0)), "duplicates": int(dups[i]),
                 "reordered": int(reord[i])} for i in range(n_nodes)]
    fig = {
        "deliveries_expected": int(expected.sum()),
        "deliveries": int(uniq.sum()),
        "lost": int(sum(n["lost"] for n in per_node)),
        # distinct deliveries beyond the expected (messages no sender counted in its window):
        # its own figure, so that it never hides a loss on the same node
        "surplus": int(sum(n["surplus"] for n in per_node)),
        "duplicates": int(dups.sum()),
        "reordered": int(reord.sum()),
        "fanout_ms": latency_ms(fan),
        "fanout_complete": int(done.sum()),
        "total_s": round((last_recv - first_send) / SEC, 6) if first_send and last_recv else 0.0,
        "send_s": round((last_send - first_send) / SEC, 6) if first_send else 0.0,
        "per_node": per_node,
    }
    return fig, fan
