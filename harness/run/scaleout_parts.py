"""How a ``--cluster`` step is split over the client machines and their results put back
together: each machine's share of the connections and messages (exact, by largest
remainder over their cores), its first connection id and worker index, and its results
and resource samples moved into this machine's monotonic clock (ns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from harness.core.plan import MachinePart, Stage, Step
from harness.core.result import WorkerResult
from harness.core.units import SEC
from harness.run import agent
from harness.run.scaleout_agents import Machine
from harness.run.sweep import Watched

TIME_FIELDS = ("window_start", "window_end", "first_send", "last_send", "last_recv")


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` exactly: floors, then the units left
    over to the largest remainders (ties to the first). Sums to ``total``."""
    w = sum(weights)
    if w <= 0:
        raise ValueError("weights must add up to more than 0")
    exact = [total * x / w for x in weights]
    out = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (out[i] - exact[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def split_step(step: Step, weights: list[int]) -> list[Step]:
    """A step split over machines by ``weights`` (cores): its connections, listen-only
    connections and each stage's connections by largest remainder, its message budget by
    each machine's share of the connections. Per-connection rates stay as they are."""
    conns = largest_remainder(step.conns, weights)
    listen = largest_remainder(step.listen, weights)
    stages = [largest_remainder(st.conns, weights) for st in step.stages]
    messages = (largest_remainder(step.messages, conns) if step.messages is not None
                and step.conns else [step.messages] * len(weights))
    return [replace(step, conns=conns[i], listen=listen[i], messages=messages[i],
                    stages=tuple(Stage(st.duration_s, min(s[i], conns[i]), st.rate, st.label)
                                 for st, s in zip(step.stages, stages, strict=True)))
            for i in range(len(weights))]


def machine_parts(step: Step, shares: list[Step], workers: list[int], nodes: int
                  ) -> list[MachinePart]:
    """Each machine's place in the step: its first connection id and first worker index
    (after the machines before it), so that every stamp names its sender across the
    machines, and the step's whole message budget (every receiver awaits all of it)."""
    out, gid, first = [], 0, 0
    for share, n in zip(shares, workers, strict=True):
        out.append(MachinePart(gid, first, step.messages))
        gid += share.conns + share.listen * nodes
        first += n
    return out


def fanout_shifted(res: WorkerResult, delta: int, sender_delta: Callable) -> None:
    """A machine's broadcast deliveries in our monotonic frame: its arrival times moved by
    its own ``delta``, each message's intended send time by its sender machine's
    (``sender_delta`` of the stamps' worker indices)."""
    f = res.fanout
    if f is None or not len(f.msg_key):
        return
    senders = (f.msg_key >> np.uint64(32)).astype(np.int64)
    res.fanout = replace(f, msg_last=f.msg_last + delta, msg_t=f.msg_t + sender_delta(senders))


def shifted(res: WorkerResult, delta: int, worker: int) -> WorkerResult:
    """A machine's result in our monotonic frame (its times moved by ``delta`` ns), with a
    worker index unique across the machines."""
    for name in TIME_FIELDS:
        value = getattr(res, name)
        if value:
            setattr(res, name, value + delta)
    res.worker = worker
    return res


def merged_watched(done: list[tuple[Machine, agent.Part]], offsets: dict[str, int],
                   deltas: dict[str, int], t_measure: int) -> Watched:
    """The agents' resource samples of one step as one machine's: each machine's worker
    roles renamed to the merged worker index (``worker{offset + i}``, as :func:`shifted`
    numbers the results), each role and sample naming its machine, its cores keyed
    ``MACHINE/CORE``, its sample times moved into our monotonic frame (by its ``delta``)
    and counted in seconds from ``t_measure``."""
    w = Watched()
    for m, part in done:
        def rename(role: str, first: int = offsets[m.name]) -> str:
            index = role.removeprefix("worker")
            return f"worker{first + int(index)}" if index.isdigit() else role
        for role, summary in part.resources.items():
            w.summary[rename(role)] = dict(summary, machine=m.name)
        w.cores.update({f"{m.name}/{core}": v for core, v in part.cores.items()})
        for row in part.samples:
            t = row["t_ns"] + deltas[m.name]
            w.rows.append(dict(row, role=rename(row["role"]), machine=m.name, t_ns=t,
                               second=(t - t_measure) / SEC))
    w.rows.sort(key=lambda r: r["t_ns"])
    return w


def machine_deliveries(results: list[WorkerResult], receivers: np.ndarray, room_sent: int
                       ) -> dict:
    """A broadcast step's deliveries on one machine: its receivers await every machine's
    messages (``room_sent``), so its expected and lost count against the whole room."""
    uniq = sum((r.fanout.node_unique for r in results if r.fanout is not None),
               np.zeros(len(receivers), dtype=np.int64))
    expected = room_sent * receivers
    return {"deliveries_expected": int(expected.sum()), "deliveries": int(uniq.sum()),
            "lost": int(np.maximum(expected - uniq, 0).sum())}
