"""User classes of an HTTP run (``[[users]]``): each connection belongs to one class for the
whole run, and sends only its class's requests, drawn by their weights.

Pure numpy, no sockets: the coordinator deals the classes to a step's connections
(:func:`assign`), a worker picks each message's request within its connection's class
(:class:`KindPicker`), and the summary reports the split (:func:`class_counts`).

Units: think times in seconds; weights are relative (any positive numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class UserClass:
    """A class of users: its share of the connections (``weight``), its think time
    (uniform in [``think_s``, ``think_max_s``] seconds; equal bounds: constant), and its
    requests: kinds ``first`` to ``first + count - 1`` of the run's request table, whose
    weights are ``kind_weights``."""

    name: str
    weight: float
    think_s: float
    think_max_s: float
    first: int
    count: int
    kind_weights: tuple[float, ...]


def split(conns: int, weights: list[float] | np.ndarray) -> np.ndarray:
    """``conns`` connections shared out in proportion to ``weights`` (each > 0), exactly:
    the largest remainder method (Hamilton), ties to the earlier class."""
    w = np.asarray(weights, dtype=np.float64)
    quota = conns * w / w.sum()
    counts = np.floor(quota).astype(np.int64)
    left = conns - int(counts.sum())
    if left > 0:
        order = np.argsort(-(quota - counts), kind="stable")
        counts[order[:left]] += 1
    return counts


def assign(conns: int, weights: list[float] | np.ndarray) -> np.ndarray:
    """The class of each of ``conns`` connections (global ids 0..conns-1): exactly
    :func:`split`'s counts, interleaved (the j-th member of a class of n sits at (j+0.5)/n of
    the way), so a prefix of the ids (a stage's first connections) is near the weights too."""
    counts = split(conns, weights)
    cls = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    j = np.arange(conns) - np.repeat(np.cumsum(counts) - counts, counts)
    key = (j + 0.5) / np.repeat(np.maximum(counts, 1), counts)
    return cls[np.argsort(key, kind="stable")]


def class_counts(conns: int, users: tuple[UserClass, ...]) -> dict[str, int]:
    """Connections per class, by name, for a step of ``conns`` connections."""
    counts = split(conns, [u.weight for u in users])
    return {u.name: int(c) for u, c in zip(users, counts, strict=True)}


class KindPicker:
    """Each message's request (global kind index) drawn by weight within its connection's
    class, vectorized: class ``c``'s kinds own the interval [c, c+1), split by their weights,
    and a draw ``c + u`` (u uniform in [0, 1)) lands in one of them."""

    def __init__(self, users: tuple[UserClass, ...]) -> None:
        edges = []
        for c, u in enumerate(users):
            w = np.asarray(u.kind_weights, dtype=np.float64)
            cum = c + np.cumsum(w / w.sum())
            cum[-1] = c + 1.0  # exactly: a draw below c + 1 never falls past the class
            edges.append(cum)
        self.edges = np.concatenate(edges)  # kinds are laid out class by class
        self.last = np.cumsum([u.count for u in users]) - 1  # each class's last kind

    def pick(self, cls: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Kinds (uint16) for messages of classes ``cls`` from uniform draws ``u``."""
        at = np.searchsorted(self.edges, cls + u, side="right")
        # c + u rounds up to c + 1 for u within 2^-53 c of 1: keep it in its class
        return np.minimum(at, self.last[cls]).astype(np.uint16)
