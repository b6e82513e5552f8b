"""The harness agents a ``--cluster`` run uses: found through the Dask scheduler, each with
its cores, its versions checked against ours and its wall clock's offset from ours (ns, from
the round trip with the least delay); a failed task told in one line. No printing, no
exits: :class:`ClusterError` carries the one line for exit 2."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness.run import agent

CLOCK_ROUNDS = 5  # round trips per machine to measure its clock offset


class ClusterError(Exception):
    """The cluster cannot run this plan (exit 2): unreachable, no agents, versions differ."""


@dataclass(frozen=True, slots=True)
class Machine:
    address: str  # the Dask worker's address
    name: str  # its --name (the host name by default)
    cores: int  # usable cores: the weight of its share
    offset_ns: int  # its wall clock minus ours, from the round trip with the least delay
    rtt_ns: int


def describe(fut: Any) -> str:
    """What a failed task says about its machine, in one line."""
    exc = fut.exception()
    name = type(exc).__name__
    if name == "KilledWorker":
        return "was lost mid-step (its agent died)"
    text = " ".join(str(exc).split())
    return f"failed: {name}: {text}" if text else f"failed: {name}"


def discover(client: Any) -> list[Machine]:
    """The harness agents connected to the scheduler, with their cores and clock offsets;
    ClusterError when there are none or when a version differs from ours."""
    workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n(client) else \
        client.scheduler_info()["workers"]
    addrs = sorted(a for a, w in workers.items() if w.get("resources", {}).get(agent.RESOURCE))
    if not addrs:
        raise ClusterError(f"--cluster: no harness agent is connected to {client.scheduler.address}"
                           " (start one per client machine: harness agent ADDRESS)")
    infos = client.run(agent.info, workers=addrs)
    ours = agent.versions()
    for a in addrs:
        theirs = infos[a]["versions"]
        diff = [f"{k} {theirs.get(k)} (here {v})" for k, v in ours.items() if theirs.get(k) != v]
        if diff:
            raise ClusterError(f"--cluster: version mismatch: agent {workers[a].get('name')} "
                               f"({a}) has {', '.join(diff)}; install the same versions "
                               "everywhere")
    return [Machine(a, str(workers[a].get("name") or a), int(infos[a]["cores"]),
                    *clock_offset(client, a)) for a in addrs]


def _takes_n(client: Any) -> bool:
    import inspect
    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def clock_offset(client: Any, address: str) -> tuple[int, int]:
    """(offset, round trip) in ns: the agent's wall clock minus ours at the midpoint of the
    round trip with the least delay."""
    best = (0, 1 << 62)
    for _ in range(CLOCK_ROUNDS):
        t0 = time.time_ns()
        theirs = client.run(agent.wall_ns, workers=[address])[address]
        t1 = time.time_ns()
        if t1 - t0 < best[1]:
            best = (theirs - (t0 + t1) // 2, t1 - t0)
    return best
