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
    # flows (docs/users.md): global kinds sent first on each connection (``on_start``), and
    # after every ``iterations`` requests of the weighted loop (``on_stop``, then on_start
    # again: a new session); 0 iterations: the loop runs to the end of the step
    on_start: tuple[int, ...] = ()
    on_stop: tuple[int, ...] = ()
    iterations: int = 0
    restart: bool = False  # on_capture_missing = "restart": back to on_start
    cookies: bool = False  # Set-Cookie kept per connection and sent back
    captures: tuple = ()  # per kind of the class: its captures (harness.protocols.http.checks)
    checks: tuple = ()  # per kind of the class: its Check, or None

    @property
    def stateful(self) -> bool:
        """Whether its connections carry state from response to request (a flow, a
        capture or cookies): then each request waits for the last response."""
        return bool(self.on_start or self.on_stop or any(self.captures) or self.cookies)

    @property
    def reads(self) -> bool:
        """Whether its responses are read beyond the status (captures, checks, cookies)."""
        return self.stateful or any(c is not None for c in self.checks)


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


class Sessions:
    """Each connection's place in its class's flow (on_start, the weighted loop, on_stop),
    and the request that comes next, vectorized: ``pos[i]`` counts the requests of the
    connection's current session."""

    def __init__(self, users: tuple[UserClass, ...], classes: np.ndarray) -> None:
        self.picker = KindPicker(users)
        self.cls = classes
        width = max([1] + [max(len(u.on_start), len(u.on_stop)) for u in users])
        self.start = np.zeros((len(users), width), dtype=np.int64)
        self.stop = np.zeros((len(users), width), dtype=np.int64)
        for c, u in enumerate(users):
            self.start[c, :len(u.on_start)] = u.on_start
            self.stop[c, :len(u.on_stop)] = u.on_stop
        self.n_start = np.asarray([len(u.on_start) for u in users], dtype=np.int64)
        self.loops = np.asarray([u.iterations for u in users], dtype=np.int64)
        self.cycle = self.n_start + self.loops + np.asarray([len(u.on_stop) for u in users],
                                                            dtype=np.int64)
        self.pos = np.zeros(len(classes), dtype=np.int64)

    def next(self, idx: np.ndarray, counts: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The kinds (uint16) of the next ``counts`` requests of local connections ``idx``
        (``u``: a uniform draw per request, for the loop's pick); advances their flows."""
        conn = idx.repeat(counts)
        rank = np.arange(len(conn)) - np.repeat(np.cumsum(counts) - counts, counts)
        c = self.cls[conn]
        p = self.place(self.pos[conn] + rank, c)
        kinds = self.picker.pick(c, u).astype(np.int64)
        first = p < self.n_start[c]
        kinds[first] = self.start[c[first], p[first]]
        last = (self.loops[c] > 0) & (p >= self.n_start[c] + self.loops[c])
        kinds[last] = self.stop[c[last], (p - self.n_start[c] - self.loops[c])[last]]
        self.pos[idx] = self.place(self.pos[idx] + counts, self.cls[idx])
        return kinds.astype(np.uint16)

    def place(self, p: np.ndarray, c: np.ndarray) -> np.ndarray:
        """A count of requests as a place in the flow: around the cycle of a class with
        iterations, else held at the loop (past on_start)."""
        loops = self.loops[c] > 0
        return np.where(loops, p % np.maximum(self.cycle[c], 1), np.minimum(p, self.n_start[c]))

    def restart(self, i: int) -> None:
        """Connection ``i`` goes back to on_start (a capture found nothing)."""
        self.pos[i] = 0
