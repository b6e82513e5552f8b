"""How a step is dealt to this machine's workers: the step's global connection table
(which node each connection talks to, whether it sends, its message budget and user class),
dealt round-robin, each worker's share with its stages; and whether the largest step fits
the open-files limit of one worker (or of the embedded server)."""

from __future__ import annotations

import numpy as np

from harness.core.limits import FD_RESERVE
from harness.core.plan import MachinePart, Plan, Step
from harness.core.result import Share
from harness.core.users import assign
from workloads import Workload


def fd_shortfall(plan: Plan, limit: int, most_conns: int | None = None) -> str | None:
    """Why the plan needs more sockets than the open-files ``limit`` allows a process, or
    None. A worker holds its round-robin share of a step's connections (at most
    ``ceil(total / workers)``), the embedded server every connection to a node; each keeps
    FD_RESERVE descriptors for itself. ``most_conns`` overrides the largest sender count
    (an until-degraded sweep's --max-conns, a search's --hi)."""
    room = max(limit - FD_RESERVE, 1)
    senders = max(most_conns or 0, *(s.conns for s in plan.steps))
    listen = max(s.listen for s in plan.steps)
    nodes, push = len(plan.targets), len(plan.push_hosts or (0,))
    per_worker = -(-(senders + listen * nodes) // plan.workers)
    if per_worker > room:
        fewest = -(-(senders + listen * nodes) // room)
        return (f"{senders + listen * nodes} connections over {plan.workers} worker(s) need "
                f"{per_worker} open files in one worker; the open-files limit {limit} "
                f"(less {FD_RESERVE} kept) allows {room} per worker: use --workers "
                f"{fewest} or more, or fewer connections")
    per_node = -(-senders // push) + listen
    if plan.embedded and per_node > room:
        return (f"{per_node} connections to one embedded server node need more than its "
                f"open-files limit {limit} (less {FD_RESERVE} kept) allows: at most {room}")
    return None


def split(total: int, parts: int) -> list[int]:
    """``total`` split over ``parts`` exactly: no remainder dropped."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def build_shares(plan: Plan, step: Step, workload: type[Workload], key: int) -> list[Share]:
    """Global connection table for a step, dealt round-robin to the workers. Senders go
    round-robin over ``--push-hosts``; without it, over every target for echo-style
    workloads, and to the first node for broadcast (a room's senders on one node)."""
    n_nodes = len(plan.targets)
    push = plan.push_hosts or ((0,) if workload.delivery == "broadcast"
                               else tuple(range(max(n_nodes, 1))))
    node = [push[i % len(push)] for i in range(step.conns)]
    node += [n for n in range(n_nodes) for _ in range(step.listen)]
    sends = [True] * step.conns + [False] * (step.listen * n_nodes)
    total = len(node)
    budget = None
    if step.messages is not None:
        budget = np.zeros(total, dtype=np.int64)
        budget[: step.conns] = split(step.messages, max(step.conns, 1))[: step.conns]
    node_a, sends_a = np.asarray(node, dtype=np.int64), np.asarray(sends, dtype=bool)
    classes = None
    if plan.users:  # [[users]]: each sender's class, split exactly by the classes' weights
        classes = np.zeros(total, dtype=np.int64)
        classes[: step.conns] = assign(step.conns, [u.weight for u in plan.users])
    shares = []
    part = plan.part or MachinePart()  # --cluster: ids after the machines before this one
    room = part.room_messages if part.room_messages is not None else step.messages
    for w in range(plan.workers):
        gids = np.arange(w, total, plan.workers, dtype=np.int64)
        expect = None
        if workload.delivery == "broadcast" and room is not None:
            expect = room * len(gids)  # every receiver gets every machine's messages
        shares.append(Share(w, gids + part.first_gid, node_a[gids], sends_a[gids],
                            None if budget is None else budget[gids], step.rate, expect, key,
                            stage_shares(step, gids),
                            None if classes is None else classes[gids]))
    return shares


def stage_shares(step: Step, gids: np.ndarray) -> tuple[tuple[float, int, float], ...]:
    """Per stage: its start (s into the measure window), how many of these connections are
    active (the global ids below the stage's count), and its rate."""
    out, start = [], 0.0
    for st in step.stages:
        out.append((start, int((gids < st.conns).sum()), st.rate))
        start += st.duration_s
    return tuple(out)
